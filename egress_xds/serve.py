"""`egress-xds serve`: load the policy, publish snapshots, serve ADS, follow changes until SIGTERM.

The policy is re-read on a file change, on SIGHUP and on the admin API's `Reload`, always through one
`PolicyReloader` (parsing in a worker thread, so that streams keep being served from the last good policy).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from egress_xds.admin import DebugView, PolicyReloader, add_debug_services
from egress_xds.admin.server import start_health_server
from egress_xds.admin.write_access import WriteAccess
from egress_xds.defaults import DRAIN_WINDOW_SECONDS, FILE_DEBOUNCE_MS, MAX_CONNECTION_AGE_SECONDS, SERVE_LISTEN
from egress_xds.listen_address import bind_failure, bind_problem
from egress_xds.logs import scrub_logs
from egress_xds.metrics import RELOADS, SNAPSHOT_BUILD_SECONDS, serve_metrics
from egress_xds.policy.errors import ConfigError
from egress_xds.policy.model import PolicySet
from egress_xds.publish import CoalescedPublishes, PolicyPublisher, PublishReport
from egress_xds.scrub import SecretScrubber
from egress_xds.sources.file_watch import watch_policy_file
from egress_xds.sources.kubernetes.layers import PolicyLayers
from egress_xds.sources.policy_source import PolicySource
from egress_xds.sources.reloader import FILE_CHANGE, SIGNAL
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.identity import SpiffeId
from egress_xds.xds.server import AdsServer
from egress_xds.xds.tls import ServerTls, TlsFilesError

if TYPE_CHECKING:  # the kubernetes client is imported only with --kubernetes
    from egress_xds.sources.kubernetes.source import KubernetesOptions, KubernetesSource

_log = logging.getLogger("egress_xds.serve")

SHUTDOWN_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ServeOptions:
    config: Path | None  # None: build the policy from the environment
    environ: Mapping[str, str]
    listen: str = SERVE_LISTEN
    debounce_ms: int = FILE_DEBOUNCE_MS
    metrics_address: str | None = None
    kubernetes: KubernetesOptions | None = None  # also follow EgressProxy resources; they take precedence
    from_env: bool = True  # with config None and kubernetes set, False means: no file or environment policy
    tls: ServerTls | None = None  # --tls-cert / --tls-key / --client-ca; None: plaintext
    admin_identities: frozenset[SpiffeId] = frozenset()  # --admin-identity: may call Reload besides loopback
    health_address: str | None = None  # --health-listen: plaintext grpc.health.v1 only (probes without TLS)
    drain_window: float = DRAIN_WINDOW_SECONDS  # --drain-window: spread the closing of streams at shutdown
    max_connection_age: float = MAX_CONNECTION_AGE_SECONDS  # --max-connection-age: 0 is unlimited


class StartupError(Exception):
    """The server cannot start (an address in use, ...): one line for the user, no traceback."""


def read_static_policies(options: ServeOptions) -> PolicySet:
    """The file or environment policy. Raises ConfigError: the server does not start on an invalid policy, and
    a reload keeps the last good one. Each warning (an ignored NO_PROXY entry, a proxy value
    without a scheme) is logged once per read."""
    if options.config is None and options.kubernetes is not None and not options.from_env:
        return PolicySet(())
    loaded = PolicySource(options.config, options.environ).load()
    for warning in loaded.warnings:
        _log.warning("%s", warning)
    return loaded.policies


# Each ADS stream keeps ~94 GC-tracked objects; with CPython's default thresholds, full collections over 10,000
# streams cost 1.2-1.5 s of the 4 s a config change took (bench/ads_fanout.py). Rarer collections: p99 4.5 -> 2.7 s.
GC_THRESHOLDS = (50_000, 20, 100)


def _freeze_startup_objects() -> None:
    """Leave what startup made (modules, protobuf descriptors, gRPC, the first snapshot: ~40,000 objects that
    live as long as the process) out of every later collection. Measured: a full collection over them alone took
    21 ms, and 0.001 ms once frozen; a server with 10,000 streams adds ~940,000 objects of its own, which stay
    collectable. Young collections (the only kind a config change triggered in the fan-out bench) never look at
    old objects, so this changes nothing there; it takes the startup share off the rare full ones. A snapshot built
    later is not frozen: replaced ones must stay collectable."""
    gc.collect()
    gc.freeze()


async def serve(options: ServeOptions) -> None:
    """Run until SIGTERM / SIGINT. Raises ConfigError (invalid initial policy) or StartupError."""
    _check_addresses(options)
    gc.set_threshold(*GC_THRESHOLDS)
    publisher = PolicyPublisher(SnapshotCache(lambda node: None))
    scrubber = SecretScrubber(lambda: publisher.policies)
    unscrub_logs = scrub_logs(scrubber)  # from the first line on (a warning may quote the environment)
    try:
        layers = PolicyLayers(read_static_policies(options))
        await _serve(options, layers, publisher, scrubber)
    finally:
        unscrub_logs()


def _check_addresses(options: ServeOptions) -> None:
    """A port that cannot be bound is refused before anything else runs: one line, without gRPC core's own log
    line (`add_port.cc ... Failed to add port`), and before the policy is loaded and logged. gRPC binds again
    later; the error paths there remain for an address taken in between."""
    for address, what in ((options.listen, ""), (options.health_address, " (health)")):
        if address is None:
            continue
        problem = bind_problem(address)
        if problem is not None:
            raise StartupError(f"cannot listen on {address}{what}: {problem}")


async def _serve(
    options: ServeOptions, layers: PolicyLayers, publisher: PolicyPublisher, scrubber: SecretScrubber
) -> None:
    if options.metrics_address:
        try:
            _log.info("metrics on http://%s/metrics", serve_metrics(options.metrics_address))
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            raise StartupError(f"cannot listen on {options.metrics_address} (metrics): {reason}") from None
    _warn_about_trust(options.tls, options.listen)
    kubernetes = await _start_kubernetes(options, publisher, layers)
    policies = layers.current()
    _report_publish(publisher.publish(policies), policies, "loaded")

    async def publish_static(new: PolicySet) -> None:
        layers.with_static(new)
        _report_publish(await publisher.publish_off_loop(layers.current), layers.current(), "reloaded")

    reloader = PolicyReloader(
        lambda: read_static_policies(options),
        publish_static,
        _reject,
        source=_source(options),
    )
    reloader.loaded(policies)

    try:
        server = AdsServer(
            publisher.cache,
            options.listen,
            tls=options.tls,
            drain_window=options.drain_window,
            max_connection_age=options.max_connection_age,
        )
    except TlsFilesError as error:
        if kubernetes is not None:
            await kubernetes.stop()
        raise StartupError(f"cannot serve TLS: {error}") from None
    except RuntimeError:  # gRPC says only "Failed to bind to address"
        if kubernetes is not None:
            await kubernetes.stop()
        raise StartupError(f"cannot listen on {options.listen}: {bind_failure(options.listen)}") from None
    state = DebugView(
        publisher.cache,
        server.registry,
        policies=lambda: publisher.policies,
        source=_source(options),
        reloader=reloader,
        scrubber=scrubber,
        write_access=WriteAccess(
            options.admin_identities, verifies_clients=options.tls is not None and options.tls.verifies_clients
        ),
    )
    health = await add_debug_services(server, state)
    await server.start()
    health_server = None
    if options.health_address is not None:
        try:
            health_server, health_port = await start_health_server(options.health_address, health)
        except RuntimeError:
            await server.stop(grace=0)
            if kubernetes is not None:
                await kubernetes.stop()
            reason = bind_failure(options.health_address)
            raise StartupError(f"cannot listen on {options.health_address} (health): {reason}") from None
        _log.info("health (grpc.health.v1, plaintext) on %s (port %d)", options.health_address, health_port)
    _freeze_startup_objects()
    stopped = asyncio.Event()
    stop_on_signals(server, SHUTDOWN_GRACE_SECONDS, on_stop=stopped.set)
    remove_reload_signal = _reload_on_sighup(reloader)
    watcher = None
    if options.config is not None:
        watcher = asyncio.create_task(
            watch_policy_file(
                options.config,
                lambda: reloader.reload(FILE_CHANGE),
                debounce_ms=options.debounce_ms,
                stop=stopped,
            )
        )
        _log.info("watching %s for changes (debounce %d ms)", options.config, options.debounce_ms)
    await stopped.wait()
    remove_reload_signal()
    if watcher is not None:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    if health_server is not None:
        await health_server.stop(0)
    if kubernetes is not None:
        await kubernetes.stop()
    _log.info("stopped")


def _warn_about_trust(tls: ServerTls | None, listen: str) -> None:
    """Said once, at start: without client certificates, node metadata (namespace, labels) decides which
    policy and credentials a node gets, and any client that reaches the port can claim anything."""
    if tls is not None and tls.verifies_clients:
        _log.info("client certificates required (%s): namespace and service account come from them", tls.client_ca)
        return
    transport = "plaintext" if tls is None else "TLS without client certificates"
    _log.warning(
        "SECURITY: xDS is served over %s; node metadata (namespace, serviceAccount, labels) is TRUSTED AS CLAIMED: "
        "any client that reaches %s can claim any namespace and receive its proxy credentials. "
        "Use --tls-cert, --tls-key and --client-ca to verify identities (README, trust model)",
        transport,
        listen,
    )


def stop_on_signals(
    server: AdsServer,
    grace: float,
    on_stop: Callable[[], None],
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """On SIGTERM / SIGINT, `server.stop(grace)` (health NOT_SERVING, streams closed over the drain window), then
    `on_stop`. A second signal while stopping changes nothing."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def stop() -> None:
        await server.stop(grace)
        on_stop()

    def handle(signum: signal.Signals) -> None:
        _log.info("received %s", signum.name)
        task = loop.create_task(stop())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    for signum in signals:
        loop.add_signal_handler(signum, handle, signum)


def _reload_on_sighup(reloader: PolicyReloader) -> Callable[[], None]:
    """SIGHUP re-reads the policy source (as nginx, squid and haproxy do). Returns a function that undoes it."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[object]] = set()

    def handle() -> None:
        _log.info("received SIGHUP: reloading the policy")
        task: asyncio.Task[object] = loop.create_task(reloader.reload(SIGNAL))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, handle)

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return remove


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

    publishes = CoalescedPublishes(
        publisher, layers.current, lambda report: _report_publish(report, layers.current(), "kubernetes: published")
    )

    def changed(policies: PolicySet) -> None:
        layers.with_kubernetes(policies)
        publishes.request()

    source = KubernetesSource(options.kubernetes, changed, environ=options.environ)
    _log.info("waiting for the first list of EgressProxy, ClusterEgressProxy and Secret resources")
    layers.with_kubernetes(await source.start())
    return source


def _report_publish(report: PublishReport, policies: PolicySet, verb: str) -> None:
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
