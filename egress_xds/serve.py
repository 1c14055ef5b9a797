"""`egress-xds serve`: load the policy, publish snapshots, serve ADS, follow changes until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from egress_xds.metrics import RELOADS, SNAPSHOT_BUILD_SECONDS, serve_metrics
from egress_xds.policy.errors import ConfigError
from egress_xds.policy.model import PolicySet
from egress_xds.publish import PolicyPublisher, PublishReport
from egress_xds.sources.environment import policy_from_environment
from egress_xds.sources.file import load_policy_file
from egress_xds.sources.file_watch import DEFAULT_DEBOUNCE_MS, watch_policy_file
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.server import install_signal_handlers, start_server

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


def initial_policies(options: ServeOptions) -> PolicySet:
    """The policy to start with. Raises ConfigError: the server does not start on an invalid policy."""
    if options.config is None:
        return policy_from_environment(options.environ)
    return load_policy_file(options.config)


async def serve(options: ServeOptions) -> None:
    policies = initial_policies(options)
    cache = SnapshotCache(lambda node: None)
    publisher = PolicyPublisher(cache)
    _log_publish(publisher.publish(policies), policies, "loaded")
    server = await start_server(cache, options.listen)
    stopped = asyncio.Event()
    install_signal_handlers(server, SHUTDOWN_GRACE_SECONDS, on_stop=stopped.set)
    if options.metrics_address:
        serve_metrics(options.metrics_address)
        _log.info("metrics on http://%s/metrics", options.metrics_address)
    watcher = None
    if options.config is not None:
        watcher = asyncio.create_task(
            watch_policy_file(
                options.config,
                lambda new: _log_publish(publisher.publish(new), new, "reloaded"),
                _reject,
                debounce_ms=options.debounce_ms,
                stop=stopped,
            )
        )
        _log.info("watching %s for changes (debounce %d ms)", options.config, options.debounce_ms)
    await stopped.wait()
    if watcher is not None:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    _log.info("stopped")


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
