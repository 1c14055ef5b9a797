"""`egress-xds serve`: load the policy, publish snapshots, serve ADS, follow changes until SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from egress_xds.admin import DebugState, PolicyReloader, add_debug_services
from egress_xds.admin.reloads import FILE_CHANGE
from egress_xds.logs import scrub_logs
from egress_xds.metrics import RELOADS, SNAPSHOT_BUILD_SECONDS, serve_metrics
from egress_xds.policy.errors import ConfigError
from egress_xds.policy.model import PolicySet
from egress_xds.publish import PolicyPublisher, PublishReport
from egress_xds.scrub import SecretScrubber
from egress_xds.sources.environment import policy_from_environment
from egress_xds.sources.file import load_policy_file
from egress_xds.sources.file_watch import DEFAULT_DEBOUNCE_MS, watch_policy_file
from egress_xds.sources.kubernetes.layers import PolicyLayers
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.server import install_signal_handlers, registry_of, start_server

if TYPE_CHECKING:  # the kubernetes client is imported only with --kubernetes
    from egress_xds.sources.kubernetes.source import KubernetesOptions, KubernetesSource

_log = logging.getLogger("egress_xds.serve")

DEFAULT_LISTEN = "0.0.0.0:18000"
SHUTDOWN_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ServeOptions:
    config: Path | None  # None: build the policy from the environment
    environ: Mapping[str, str]
    listen: str = DEFAULT_LISTEN
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    metrics_address: str | None = None
    kubernetes: KubernetesOptions | None = None  # also follow EgressProxy resources; they take precedence
    from_env: bool = True  # with config None and kubernetes set, False means: no file or environment policy


def initial_policies(options: ServeOptions) -> PolicySet:
    """The policy to start with. Raises ConfigError: the server does not start on an invalid policy."""
    if options.config is None:
        if options.kubernetes is not None and not options.from_env:
            return PolicySet(())
        return policy_from_environment(options.environ)
    return load_policy_file(options.config)


# Each ADS stream keeps ~94 GC-tracked objects; with CPython's default thresholds, full collections over 10,000
# streams cost 1.2-1.5 s of the 4 s a config change took (bench/ads_fanout.py). Rarer collections: p99 4.5 -> 2.7 s.
GC_THRESHOLDS = (50_000, 20, 100)


async def serve(options: ServeOptions) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    layers = PolicyLayers(initial_policies(options))
    cache = SnapshotCache(lambda node: None)
    publisher = PolicyPublisher(cache)
    scrubber = SecretScrubber(lambda: publisher.policies)
    unscrub_logs = scrub_logs(scrubber)
    kubernetes = await _start_kubernetes(options, publisher, layers)
    policies = layers.current()
    _log_publish(publisher.publish(policies), policies, "loaded")
    reloader = PolicyReloader(
        lambda: initial_policies(options),
        lambda new: _log_publish(publisher.publish(layers.with_static(new)), layers.current(), "reloaded"),
        _reject,
    )
    reloader.loaded(policies)

    async def add_debug(server: grpc.aio.Server) -> None:
        state = DebugState(
            cache,
            registry_of(server),
            policies=lambda: publisher.policies,
            source=_source(options),
            reloader=reloader,
            scrubber=scrubber,
        )
        await add_debug_services(server, state)

    server = await start_server(cache, options.listen, before_start=add_debug)
    stopped = asyncio.Event()
    install_signal_handlers(server, SHUTDOWN_GRACE_SECONDS, on_stop=stopped.set)
    if options.metrics_address:
        _log.info("metrics on http://%s/metrics", serve_metrics(options.metrics_address))
    watcher = None
    if options.config is not None:
        watcher = asyncio.create_task(
            watch_policy_file(
                options.config,
                lambda new: reloader.published(new, FILE_CHANGE),
                lambda error: reloader.rejected(error, FILE_CHANGE),
                debounce_ms=options.debounce_ms,
                stop=stopped,
            )
        )
        _log.info("watching %s for changes (debounce %d ms)", options.config, options.debounce_ms)
    await stopped.wait()
    if watcher is not None:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    if kubernetes is not None:
        await kubernetes.stop()
    _log.info("stopped")
    unscrub_logs()


def _source(options: ServeOptions) -> str:
    """Where the policy comes from, for the admin API: "kubernetes", a file path, "environment", or a mix."""
    parts = ["kubernetes"] if options.kubernetes is not None else []
    if options.config is not None:
        parts.append(str(options.config))
    elif options.kubernetes is None or options.from_env:
        parts.append("environment")
    return " + ".join(parts)


async def _start_kubernetes(
    options: ServeOptions, publisher: PolicyPublisher, layers: PolicyLayers
) -> KubernetesSource | None:
    """With --kubernetes: wait for the first list of every watched type, so that the first snapshot Envoys get
    already holds the resources (a server restart must not push a half-known configuration)."""
    if options.kubernetes is None:
        return None
    from egress_xds.sources.kubernetes.source import KubernetesSource

    def changed(policies: PolicySet) -> None:
        _log_publish(publisher.publish(layers.with_kubernetes(policies)), layers.current(), "kubernetes: published")

    source = KubernetesSource(options.kubernetes, changed, environ=options.environ)
    _log.info("waiting for the first list of EgressProxy, ClusterEgressProxy and Secret resources")
    layers.with_kubernetes(await source.start())
    return source


def _log_publish(report: PublishReport, policies: PolicySet, verb: str) -> None:
    RELOADS.labels(result="ok").inc()
    SNAPSHOT_BUILD_SECONDS.observe(report.build_seconds)
    names = ", ".join(policy.name for policy in policies.policies)
    _log.info(
        "%s %d policies (%s): %d snapshot(s) changed, %d removed, %d stream(s) moved, built in %.1f ms",
        verb,
        len(policies.policies),
        names,
        len(report.changed),
        len(report.removed),
        report.moved_streams,
        report.build_seconds * 1000,
    )


def _reject(error: ConfigError) -> None:
    RELOADS.labels(result="invalid").inc()
    _log.error("reload rejected, still serving the last good policy (%d error(s)):", len(error.issues))
    for issue in error.issues:
        _log.error("  %s", issue)
