"""The `egress-xds` command line.

Exit codes (README "Commands"): 0 done; 1 the configuration or the environment is wrong (an invalid policy, an
address in use, a server that cannot be reached); 2 a usage error (a bad flag or argument); 3 `status` found a
node out of sync for longer than `--fail-nack-after` / `--fail-stale-after`; 70 an internal error, a bug in
egress-xds: one line saying so, the traceback only with `--debug` or EGRESS_XDS_DEBUG=1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from egress_xds import __version__, yaml_text
from egress_xds.defaults import (
    CAPTURE_PORT,
    DRAIN_WINDOW_SECONDS,
    FILE_DEBOUNCE_MS,
    MAX_CONNECTION_AGE_SECONDS,
    SERVE_LISTEN,
    SERVER_ADDRESS,
)
from egress_xds.durations import format_duration, parse_duration
from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.policy.model import EgressPolicy
from egress_xds.policy.node import MODE_METADATA_KEY, Node, NodeMode, select_policy
from egress_xds.redact import contains_redactions, redact_config, redact_value
from egress_xds.scrub import SecretScrubber
from egress_xds.sources.policy_source import LoadedPolicy, PolicySource
from egress_xds.traffic.outcome import OUTCOMES
from egress_xds.translate import translate
from egress_xds.translate.bootstrap import XdsTls, ads_bootstrap, resources_as_dict, sds_files, static_bootstrap
from egress_xds.translate.envoy_admin import (
    DEFAULT_ADMIN_ADDRESS,
    DEFAULT_ADMIN_SOCKET,
    DEFAULT_READINESS_PORT,
    AdminChoice,
    choose_admin,
)

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_OUT_OF_SYNC = 3
EXIT_PARTIAL = 4  # status / traffic over several replicas: some did not answer (named on stderr and in -o json)
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE (sysexits.h)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports `egress-xds render | head`
DEBUG_VARIABLE = "EGRESS_XDS_DEBUG"

# Error texts go through the scrubber's patterns (URL userinfo, Basic/Bearer tokens) before they are printed: a
# message may quote the input, and the input may hold a password. Each run also teaches it its own arguments (a
# proxy URL pasted into a flag), which free-text patterns alone cannot bound (a password with a space).
_SCRUBBER = SecretScrubber()


def main(argv: Sequence[str] | None = None) -> int:
    global _SCRUBBER
    _SCRUBBER = SecretScrubber()
    _SCRUBBER.learn_values(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)  # a usage error exits 2 here
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except ConfigError as error:
        for issue in error.issues:
            _error(str(issue))
        return EXIT_INVALID
    except UsageError as error:
        _error(str(error))
        return EXIT_USAGE
    except CommandFailed as error:
        _error(str(error))
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # nothing more can be said; keep Python from printing about the pipe at exit
        return EXIT_BROKEN_PIPE
    except Exception as error:  # a bug: one line for the user, the traceback on request
        return _internal_error(error, debug=bool(getattr(args, "debug", False) or os.environ.get(DEBUG_VARIABLE)))


class UsageError(Exception):
    """A bad flag value; printed without a traceback, exit 2."""


class CommandFailed(Exception):
    """The command could not do its job for a reason outside egress-xds (an address in use, a server that
    cannot be reached); printed as one line, exit 1."""


def _error(text: str) -> None:
    print(f"error: {_SCRUBBER.scrub(text)}", file=sys.stderr)


def _internal_error(error: Exception, *, debug: bool) -> int:
    if debug:
        print(_SCRUBBER.scrub("".join(traceback.format_exception(error))), file=sys.stderr, end="")
    hint = "" if debug else f"; run it again with --debug (or {DEBUG_VARIABLE}=1) for the details"
    print(
        f"error: internal error ({type(error).__name__}): this is a bug in egress-xds {__version__}, not a problem "
        f"with your input; please report it with the command you ran{hint}",
        file=sys.stderr,
    )
    return EXIT_INTERNAL_ERROR


class _Parser(argparse.ArgumentParser):
    """argparse, with its error messages (which quote the offending argument) scrubbed."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_SCRUBBER.scrub(message)}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="egress-xds", description="xDS control plane that tunnels Envoy's outbound traffic through an HTTP proxy"
    )
    parser.add_argument("--version", action="version", version=f"egress-xds {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help=f"on an internal error, print the traceback ({DEBUG_VARIABLE}=1)"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_subparser_class(common))

    check = commands.add_parser("check", help="validate a policy file; exit 1 listing every error")
    _source_arguments(check)
    _output_argument(check)
    check.set_defaults(handler=_check)

    render = commands.add_parser("render", help="print the listeners and clusters a node gets")
    _source_arguments(render)
    _node_arguments(render)
    render.add_argument("--format", choices=("yaml", "json"), default="yaml")
    render.add_argument("--static", action="store_true", help="print a complete Envoy bootstrap (static resources)")
    _admin_arguments(render, "with --static: ")
    render.add_argument("--show-secrets", action="store_true", help="include proxy credentials (redacted by default)")
    render.set_defaults(handler=_render)

    bootstrap = commands.add_parser("bootstrap", help="print an Envoy bootstrap that uses an egress-xds server")
    _node_arguments(bootstrap)
    bootstrap.add_argument(
        "--xds-address",
        required=True,
        action="append",
        metavar="HOST:PORT",
        help="the egress-xds server; repeat it for several replicas (Envoy moves to another when one goes away)",
    )
    bootstrap.add_argument("--delta", action="store_true", help="use incremental (Delta) xDS")
    _admin_arguments(bootstrap)
    bootstrap.add_argument("--format", choices=("yaml", "json"), default="yaml")
    xds_tls = bootstrap.add_argument_group("mutual TLS to the server (certificate files are re-read when rotated)")
    xds_tls.add_argument("--xds-ca", metavar="FILE", help="CA that signed the server's certificate (PEM)")
    xds_tls.add_argument("--client-cert", metavar="FILE", help="Envoy's client certificate chain (SPIFFE id, PEM)")
    xds_tls.add_argument("--client-key", metavar="FILE", help="Envoy's client private key (PEM)")
    xds_tls.add_argument(
        "--xds-server-name",
        metavar="NAME",
        help="the server's name in its certificate (default: the first --xds-address host)",
    )
    xds_tls.add_argument(
        "--sds-dir",
        metavar="DIR",
        help="where to write the two SDS files that point Envoy at the certificate files (Envoy must read them)",
    )
    _pod_arguments(bootstrap)
    bootstrap.set_defaults(handler=_bootstrap)

    explain = commands.add_parser("explain", help="say which path a destination takes for a node, and why")
    _source_arguments(explain)
    _node_arguments(explain)
    explain.add_argument("--protocol", choices=("tls", "http", "tcp"), help="override: how the app connects")
    explain.add_argument(
        "--address",
        metavar="IP",
        help="the address the name resolves to (for CIDR rules; required for a name over tcp)",
    )
    _output_argument(explain)
    explain.add_argument("destinations", nargs="+", metavar="DESTINATION", help="host, host:port, IP:port or URL")
    explain.set_defaults(handler=_explain)

    demo = commands.add_parser("demo", help="run the whole chain on loopback: proxy, server, Envoy, a site")
    demo.set_defaults(handler=_demo)

    capture = commands.add_parser("capture", help="redirect outbound TCP to the Envoy sidecar with iptables")
    capture.add_argument("--port", type=int, default=CAPTURE_PORT, help="Envoy's capture port (default %(default)s)")
    capture.add_argument(
        "--envoy-uid", type=int, default=1337, help="Envoy's uid, never captured (default %(default)s)"
    )
    capture.add_argument(
        "--exclude-cidr", action="append", default=[], metavar="CIDR", help="leave this destination alone (repeatable)"
    )
    capture.add_argument(
        "--exclude-port", action="append", type=int, default=[], metavar="PORT", help="leave this port alone"
    )
    capture.add_argument(
        "--ipv6",
        choices=("reject", "leave"),
        default="reject",
        help="outbound IPv6 TCP is not captured: reset it at once (default), or leave it alone",
    )
    capture_mode = capture.add_mutually_exclusive_group()
    capture_mode.add_argument("--dry-run", action="store_true", help="print the iptables commands, change nothing")
    capture_mode.add_argument("--clean", action="store_true", help="remove exactly the rules capture added")
    capture.set_defaults(handler=_capture)

    inject = commands.add_parser(
        "inject", help="add the egress-xds sidecar to every pod of Kubernetes YAML (like istioctl kube-inject)"
    )
    inject.add_argument("-f", "--filename", required=True, metavar="FILE", help="Kubernetes YAML, or - for stdin")
    _inject_settings_arguments(inject)
    inject.set_defaults(handler=_inject)

    webhook = commands.add_parser("webhook", help="serve the mutating admission webhook that injects the sidecar")
    webhook.add_argument("--listen", default="0.0.0.0:9443", metavar="HOST:PORT", help="HTTPS address (%(default)s)")
    webhook.add_argument(
        "--tls-cert", required=True, metavar="FILE", help="server certificate (PEM), re-read on change"
    )
    webhook.add_argument("--tls-key", required=True, metavar="FILE", help="its private key (PEM), re-read on change")
    webhook.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE", "egress-xds"),
        help="the webhook's own namespace, never injected (default: POD_NAMESPACE or egress-xds)",
    )
    webhook.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    webhook.add_argument(
        "--read-timeout", type=_seconds, default=10.0, metavar="SECONDS", help="per request (default %(default)s)"
    )
    _inject_settings_arguments(webhook)
    webhook.set_defaults(handler=_webhook)

    serve = commands.add_parser("serve", help="run the ADS server (SotW and Delta) for Envoys")
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--config", help="policy file (YAML or JSON), watched and reloaded on change")
    source.add_argument(
        "--from-env", action="store_true", help="build the policy from HTTP_PROXY / HTTPS_PROXY / NO_PROXY"
    )
    serve.add_argument("--listen", default=SERVE_LISTEN, metavar="HOST:PORT", help="gRPC address (default %(default)s)")
    serve.add_argument(
        "--debounce-ms",
        type=_debounce_ms,
        default=FILE_DEBOUNCE_MS,
        metavar="MS",
        help=f"coalesce file changes within this time, 0 to {MAX_DEBOUNCE_MS} (default %(default)s)",
    )
    serve.add_argument("--metrics-address", metavar="HOST:PORT", help="serve Prometheus metrics on /metrics")
    serve.add_argument(
        "--kubernetes",
        action="store_true",
        help="follow EgressProxy / ClusterEgressProxy resources and their Secrets (ahead of --config / --from-env)",
    )
    serve.add_argument("--kubeconfig", help="with --kubernetes: this kubeconfig instead of in-cluster config")
    serve.add_argument("--kube-context", help="with --kubernetes: this kubeconfig context")
    tls = serve.add_argument_group("TLS (every service on --listen; files are re-read when they change)")
    tls.add_argument("--tls-cert", metavar="FILE", help="the server's certificate chain (PEM)")
    tls.add_argument("--tls-key", metavar="FILE", help="the server's private key (PEM)")
    tls.add_argument(
        "--client-ca",
        metavar="FILE",
        help="require client certificates chaining to this CA; their SPIFFE id gives the namespace",
    )
    tls.add_argument(
        "--admin-identity",
        action="append",
        default=[],
        metavar="SPIFFE_ID",
        help="with --client-ca: this identity may call the admin Reload (besides loopback), repeatable",
    )
    serve.add_argument(
        "--health-listen",
        metavar="HOST:PORT",
        help="also serve grpc.health.v1 alone, in plaintext, here (for probes that cannot do TLS, e.g. the kubelet's)",
    )
    serve.add_argument(
        "--drain-window",
        type=_drain_window,
        default=format_duration(DRAIN_WINDOW_SECONDS),
        metavar="DURATION",
        help="at shutdown, close the streams evenly over this time, 0: all at once (default %(default)s)",
    )
    serve.add_argument(
        "--max-connection-age",
        type=_connection_age,
        default=format_duration(MAX_CONNECTION_AGE_SECONDS),
        metavar="DURATION",
        help="close each connection after this time, +-10%%, so Envoys rebalance; 0: unlimited (default %(default)s)",
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.add_argument(
        "--log-format", default="plain", choices=("plain", "json"), help="log lines as text or JSON objects"
    )
    serve.set_defaults(handler=_serve)

    status = commands.add_parser("status", help="are the connected Envoys in sync? (like istioctl proxy-status)")
    _replica_arguments(status)
    status.add_argument("node", nargs="?", metavar="NODE", help="one node id: details and the ACKed-vs-expected diff")
    _client_tls_arguments(status)
    status.add_argument(
        "--fail-nack-after",
        type=_seconds,
        metavar="SECONDS",
        help="exit 3 if a stream has been NACK for SECONDS or more (0: any NACK)",
    )
    status.add_argument(
        "--fail-stale-after",
        type=_seconds,
        metavar="SECONDS",
        help="exit 3 if a stream has been STALE (sent, not ACKed) for SECONDS or more",
    )
    _output_argument(status)
    status.set_defaults(handler=_status)

    traffic = commands.add_parser("traffic", help="what did the proxy say? outcomes per workload and destination")
    _replica_arguments(traffic)
    traffic.add_argument("node", nargs="?", metavar="NODE", help="only this node id")
    traffic.add_argument("--namespace", metavar="NS", help="only the nodes of this namespace")
    traffic.add_argument(
        "--outcome",
        action="append",
        default=[],
        metavar="OUTCOME",
        help="only destinations that saw this outcome (repeatable, or comma-separated): " + ", ".join(OUTCOMES),
    )
    traffic.add_argument(
        "--suggest-rules", action="store_true", help="print policy rules that reproduce what was observed (YAML)"
    )
    _client_tls_arguments(traffic)
    traffic.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")
    traffic.set_defaults(handler=_traffic)
    return parser


def _replica_arguments(parser: argparse.ArgumentParser) -> None:
    """`status` and `traffic`: which servers to ask (see `_replicas`)."""
    replicas = parser.add_argument_group("which servers (every replica knows only the Envoys connected to it)")
    replicas.add_argument(
        "--server",
        action="append",
        metavar="HOST:PORT",
        help=f"an egress-xds server; repeat it for every replica (default {SERVER_ADDRESS})",
    )
    replicas.add_argument(
        "--kubernetes",
        action="store_true",
        help="ask every ready replica of the Service (its EndpointSlices; default service egress-xds.egress-xds)",
    )
    replicas.add_argument(
        "--service", metavar="NAME.NAMESPACE", help="with --kubernetes (implied): the Service of the replicas"
    )
    replicas.add_argument("--kubeconfig", help="with --kubernetes: this kubeconfig instead of in-cluster config")
    replicas.add_argument("--kube-context", help="with --kubernetes: this kubeconfig context")


def _client_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """TLS to a server started with --tls-cert (`--cert`/`--key` when it requires client certificates)."""
    group = parser.add_argument_group("TLS to the server")
    group.add_argument("--ca", metavar="FILE", help="CA of the server's certificate (PEM): connect over TLS")
    group.add_argument("--cert", metavar="FILE", help="client certificate chain (PEM), for a server with --client-ca")
    group.add_argument("--key", metavar="FILE", help="client private key (PEM)")
    group.add_argument("--server-name", metavar="NAME", help="the name in the server's certificate (default: host)")


def _client_tls(args: argparse.Namespace, default_server_name: str | None = None) -> Any:
    """`default_server_name`: the name to check the certificate for when --server-name is not given and the
    address asked is not the name in the certificate (a replica's pod IP found through its Service)."""
    from egress_xds.admin.client import ClientTls

    if bool(args.cert) != bool(args.key):
        raise UsageError("--cert and --key go together")
    if not args.ca:
        if args.cert or args.server_name:
            raise UsageError("--cert, --key and --server-name need --ca (TLS)")
        return None
    return ClientTls(
        Path(args.ca),
        Path(args.cert) if args.cert else None,
        Path(args.key) if args.key else None,
        server_name=args.server_name or default_server_name,
    )


def _subparser_class(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    """Every command also accepts the common flags (`--debug`), before or after the command name."""

    class CommandParser(_Parser):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(parents=[common], **kwargs)

    return CommandParser


def _source_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="policy file (YAML or JSON)")
    source.add_argument(
        "--from-env", action="store_true", help="the policy serve --from-env builds from HTTP_PROXY / NO_PROXY ..."
    )


def _output_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 or more seconds")
    return value


MAX_DEBOUNCE_MS = 60000  # a minute: anything longer is a typo, and a reload that late is no reload


def _debounce_ms(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of milliseconds") from None
    if not 0 <= value <= MAX_DEBOUNCE_MS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 to {MAX_DEBOUNCE_MS} milliseconds")
    return value


# gRPC core takes the age in milliseconds, as a 32-bit int.
MAX_CONNECTION_AGE_LIMIT_SECONDS = (2**31 - 1) / 1000


def _bounded_duration(text: str, most: float, most_text: str) -> float:
    """`parse_duration` for argparse: a bad value is a usage error that names the flag (argparse adds it)."""
    try:
        value = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{redact_value(text)!r} {error}") from None
    if value > most:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {most_text}")
    return value


def _drain_window(text: str) -> float:
    return _bounded_duration(text, 3600.0, "1h")


def _connection_age(text: str) -> float:
    return _bounded_duration(text, MAX_CONNECTION_AGE_LIMIT_SECONDS, "596h (gRPC's limit)")


def _node_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-id", required=True, help="the Envoy node id")
    parser.add_argument(
        "--node-meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"node metadata, repeatable (e.g. namespace=payments, {MODE_METADATA_KEY}=standalone)",
    )
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in NodeMode],
        help=f"shorthand for --node-meta {MODE_METADATA_KEY}=MODE (default sidecar)",
    )


def _admin_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Where Envoy's admin listens (README "Envoy's admin and readiness"): see translate/envoy_admin.py."""
    admin = parser.add_mutually_exclusive_group()
    admin.add_argument(
        "--admin-socket",
        metavar="PATH",
        help=f"{prefix}Envoy's admin on this unix socket, mode 0600 (sidecar default {DEFAULT_ADMIN_SOCKET}); its "
        "directory must be mode 0700 and owned by Envoy's uid",
    )
    admin.add_argument(
        "--admin-address",
        metavar="HOST:PORT",
        help=f"{prefix}Envoy's admin on TCP (standalone default {DEFAULT_ADMIN_ADDRESS}); in a sidecar, every "
        "process of the pod can then read /config_dump, the proxy credentials included",
    )
    parser.add_argument(
        "--readiness-port",
        type=int,
        metavar="PORT",
        help=f"{prefix}a listener that answers only GET /ready, for Kubernetes probes (sidecar default "
        f"{DEFAULT_READINESS_PORT}; standalone: none; 0: none)",
    )


def _admin_choice(args: argparse.Namespace, mode: NodeMode) -> AdminChoice:
    try:
        return choose_admin(
            mode, socket=args.admin_socket, address=args.admin_address, readiness_port=args.readiness_port
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def _pod_arguments(parser: argparse.ArgumentParser) -> None:
    """Kubernetes identity for workload selectors; defaults come from the Downward API (see pod_identity)."""
    pod = parser.add_argument_group("Kubernetes pod (default: POD_NAMESPACE, POD_NAME, POD_LABELS_FILE)")
    pod.add_argument("--namespace", help="the pod's namespace (node metadata `namespace`)")
    pod.add_argument("--pod-name", help="the pod's name (node metadata `pod`)")
    pod.add_argument(
        "--pod-label", action="append", default=[], metavar="KEY=VALUE", help="a pod label (`labels.KEY`), repeatable"
    )
    pod.add_argument(
        "--pod-labels-file", metavar="PATH", help="Downward API labels file (default /etc/podinfo/labels if present)"
    )


def _inject_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The sidecar's settings: a file shared by `inject` and `webhook`, and flags that override it."""
    group = parser.add_argument_group("sidecar settings (flags override --config)")
    group.add_argument("--config", metavar="FILE", help="injection settings file (YAML), shared with the webhook")
    group.add_argument("--image", help="the egress-xds image (capture and bootstrap)")
    group.add_argument("--envoy-image", help="the Envoy image")
    group.add_argument("--xds-address", metavar="HOST:PORT", help="the egress-xds server, as sidecars reach it")
    group.add_argument("--envoy-uid", type=int, help="Envoy's uid, never captured")
    group.add_argument("--exclude-cidr", action="append", default=[], metavar="CIDR", help="never captured (+config)")
    group.add_argument("--exclude-port", action="append", default=[], metavar="PORT", help="never captured (+config)")
    group.add_argument("--trust-domain", help="the SPIFFE trust domain (with mTLS)")
    group.add_argument("--mtls", action=argparse.BooleanOptionalAction, default=None, help="xDS over mTLS (SPIFFE)")


def _inject_settings(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from egress_xds.inject.settings import InjectSettings, SettingError, check, load_settings

    settings = load_settings(Path(args.config)) if args.config else InjectSettings()
    overrides: dict[str, Any] = {
        name: value
        for name, value in (
            ("image", args.image),
            ("envoy_image", args.envoy_image),
            ("xds_address", args.xds_address),
            ("envoy_uid", args.envoy_uid),
            ("trust_domain", args.trust_domain),
            ("mtls", args.mtls),
        )
        if value is not None
    }
    overrides["exclude_cidrs"] = settings.exclude_cidrs + tuple(args.exclude_cidr)
    overrides["exclude_ports"] = settings.exclude_ports + tuple(args.exclude_port)
    try:
        return check(replace(settings, **overrides))
    except SettingError as error:
        flag = "--" + "".join(f"-{c.lower()}" if c.isupper() else c for c in error.key).removesuffix("s")
        raise UsageError(f"{flag}: {error.message}") from None


def _inject(args: argparse.Namespace) -> int:
    from egress_xds.inject.documents import DocumentError, inject_yaml

    settings = _inject_settings(args)
    source = "<stdin>" if args.filename == "-" else args.filename
    try:
        text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text(encoding="utf-8")
    except OSError as error:
        raise CommandFailed(f"{source}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise CommandFailed(f"{source}: not UTF-8 text") from None
    try:
        output, notes = inject_yaml(text, settings, source)
    except DocumentError as error:
        raise CommandFailed(str(error)) from None
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    sys.stdout.write(output)
    return EXIT_OK


def _webhook(args: argparse.Namespace) -> int:
    from egress_xds.inject.webhook import WebhookError, serve_webhook
    from egress_xds.listen_address import check_listen_address

    try:
        check_listen_address(args.listen)
    except ValueError as error:
        raise UsageError(f"--listen {error}") from None
    settings = _inject_settings(args)
    try:
        return serve_webhook(
            settings,
            listen=args.listen,
            cert_file=Path(args.tls_cert),
            key_file=Path(args.tls_key),
            own_namespace=args.namespace,
            log_level=args.log_level,
            read_timeout=args.read_timeout,
        )
    except WebhookError as error:
        raise CommandFailed(str(error)) from None


def _pod_metadata(args: argparse.Namespace) -> dict[str, str]:
    from egress_xds.sources.kubernetes.pod_identity import pod_identity

    labels = dict(_key_values(args.pod_label, "--pod-label"))
    try:
        identity = pod_identity(
            namespace=args.namespace,
            pod_name=args.pod_name,
            labels=labels,
            labels_file=args.pod_labels_file,
            environ=os.environ,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    return identity.node_metadata()


def _key_values(items: Sequence[str], flag: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE")
        pairs.append((key, value))
    return pairs


def _node(args: argparse.Namespace) -> Node:
    """The node of `--node-id`, `--node-meta` and `--mode`; an unknown or contradicting mode is a usage error (a
    server would give such a node nothing: policy/node.py)."""
    if not args.node_id.strip():
        raise UsageError("--node-id: empty or blank; Envoy refuses a node without an id")
    metadata = dict(_key_values(args.node_meta, "--node-meta"))
    given = metadata.get(MODE_METADATA_KEY)
    if args.mode and given is not None and given != args.mode:
        raise UsageError(f"--mode {args.mode} and --node-meta {MODE_METADATA_KEY}={given} contradict each other")
    if args.mode:
        metadata[MODE_METADATA_KEY] = args.mode
    node = Node(id=args.node_id, metadata=metadata)
    if node.mode_error is not None:
        raise UsageError(f"--node-meta {node.mode_error}")
    return node


def _load(args: argparse.Namespace) -> tuple[PolicySource, LoadedPolicy]:
    """The policy of `--config FILE` or `--from-env`; warnings (environment values read leniently) are printed."""
    source = PolicySource(Path(args.config) if args.config else None, os.environ)
    loaded = source.load()
    for warning in loaded.warnings:
        print(f"warning: {_SCRUBBER.scrub(str(warning))}", file=sys.stderr)
    return source, loaded


def _node_policy(args: argparse.Namespace) -> tuple[Node, EgressPolicy]:
    """The node given by the flags and the policy it gets (ConfigError if none selects it)."""
    node = _node(args)
    source, loaded = _load(args)
    policy = select_policy(loaded.policies, node)
    if policy is None:
        raise ConfigError([ConfigIssue(source.name, None, "", f"no policy applies to node {node.id!r}")])
    return node, policy


def _check(args: argparse.Namespace) -> int:
    if args.output == "json":
        return _check_json(args)
    source, loaded = _load(args)
    for policy in loaded.policies.policies:
        proxies = ", ".join(f"{name}={proxy.display_url}" for name, proxy in sorted(policy.proxies.items()))
        print(f"policy {policy.name}: {len(policy.rules)} rules, proxies: {proxies or 'none (all direct)'}")
    print(f"{source.name}: OK")
    return EXIT_OK


def _check_json(args: argparse.Namespace) -> int:
    """{"source", "ok", "policies": [PolicySummary as GetPolicy shows it], "warnings": [...], "errors": [...]}"""
    from egress_xds.admin.messages import config_issue
    from egress_xds.admin.policy_summary import policy_summary
    from egress_xds.admin.status_json import message_dict

    source = PolicySource(Path(args.config) if args.config else None, os.environ)
    policies: list[dict[str, Any]] = []
    warnings: tuple[ConfigIssue, ...] = ()
    errors: tuple[ConfigIssue, ...] = ()
    try:
        loaded = source.load()
    except ConfigError as error:
        errors = error.issues
    else:
        warnings = loaded.warnings
        policies = [message_dict(policy_summary(policy)) for policy in loaded.policies.policies]
    document = {
        "source": _SCRUBBER.scrub(source.name),
        "ok": not errors,
        "policies": policies,
        "warnings": [message_dict(config_issue(issue, _SCRUBBER)) for issue in warnings],
        "errors": [message_dict(config_issue(issue, _SCRUBBER)) for issue in errors],
    }
    print(json.dumps(document, indent=2))
    return EXIT_INVALID if errors else EXIT_OK


def _render(args: argparse.Namespace) -> int:
    node, policy = _node_policy(args)
    resources = translate(policy, node.mode)
    data: dict[str, Any]
    if args.static:
        choice = _admin_choice(args, node.mode)
        data = static_bootstrap(
            resources,
            node_id=node.id,
            admin=choice.admin,
            readiness_port=choice.readiness_port,
            node_metadata=node.metadata,
        )
    else:
        data = resources_as_dict(resources)
    if not args.show_secrets:
        data = redact_config(data)
        if args.static and contains_redactions(data):
            print("note: proxy credentials are redacted; pass --show-secrets for a usable bootstrap", file=sys.stderr)
    _print(data, args.format)
    return EXIT_OK


def _bootstrap(args: argparse.Namespace) -> int:
    node = _node(args)
    node = Node(id=node.id, metadata={**_pod_metadata(args), **node.metadata})  # explicit --node-meta wins
    xds_tls = _bootstrap_tls(args)
    choice = _admin_choice(args, node.mode)
    try:
        data = ads_bootstrap(
            node.id,
            args.xds_address,
            delta=args.delta,
            admin=choice.admin,
            readiness_port=choice.readiness_port,
            node_metadata=node.metadata,
            xds_tls=xds_tls,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    if xds_tls is not None:
        for path, content in sds_files(xds_tls).items():
            try:
                Path(path).write_text(json.dumps(content, indent=2) + "\n")
            except OSError as error:
                raise CommandFailed(
                    f"--sds-dir: cannot write {path}: {(error.strerror or str(error)).lower()}"
                ) from None
    _print(data, args.format)
    return EXIT_OK


def _bootstrap_tls(args: argparse.Namespace) -> XdsTls | None:
    """`--xds-ca`, `--client-cert`, `--client-key`, `--sds-dir` all or none; paths made absolute (Envoy's cwd
    is not ours). The certificate files need not exist here: Envoy reads them (in a pod, only Envoy's container
    mounts them, not the step that writes the bootstrap); a missing file is then a warning, not an error."""
    given = {flag: value for flag, value in _tls_flags(args).items() if value}
    if not given:
        if args.xds_server_name:
            raise UsageError("--xds-server-name needs --xds-ca, --client-cert, --client-key and --sds-dir")
        return None
    missing = [flag for flag in _tls_flags(args) if flag not in given]
    if missing:
        raise UsageError(f"mutual TLS needs {', '.join(missing)} too (given: {', '.join(given)})")
    for flag in ("--xds-ca", "--client-cert", "--client-key"):
        if not Path(given[flag]).is_file():
            print(f"note: {flag} {given[flag]}: no such file here; Envoy must find it", file=sys.stderr)
    if not Path(given["--sds-dir"]).is_dir():
        raise UsageError(f"--sds-dir {given['--sds-dir']}: no such directory")
    absolute = {flag: str(Path(value).absolute()) for flag, value in given.items()}
    return XdsTls(
        ca=absolute["--xds-ca"],
        client_cert=absolute["--client-cert"],
        client_key=absolute["--client-key"],
        sds_dir=absolute["--sds-dir"],
        server_name=args.xds_server_name,
    )


def _tls_flags(args: argparse.Namespace) -> dict[str, str | None]:
    return {
        "--xds-ca": args.xds_ca,
        "--client-cert": args.client_cert,
        "--client-key": args.client_key,
        "--sds-dir": args.sds_dir,
    }


def _explain(args: argparse.Namespace) -> int:
    from egress_xds.explain import TrafficKind, explain, parse_destination

    node, policy = _node_policy(args)
    if node.mode is not NodeMode.SIDECAR:
        raise UsageError("explain covers sidecar nodes (captured traffic); a standalone node has explicit listeners")
    answers: list[dict[str, object]] = []
    if args.output == "text":
        print(f"node {node.id} gets policy {policy.name!r} ({policy.source})")
    for destination in args.destinations:
        try:
            protocol = TrafficKind(args.protocol) if args.protocol else None
            probe = parse_destination(destination, protocol=protocol, address=args.address)
        except ValueError as error:
            raise UsageError(f"{destination!r}: {error}") from None
        answer = explain(policy, probe)
        cidr_rules_checked = not (probe.name is not None and probe.ip is None)
        shown = _SCRUBBER.scrub(destination)
        answers.append({"destination": shown, **answer.as_dict(), "cidr_rules_checked": cidr_rules_checked})
        if args.output == "text":
            print(answer)
            if not cidr_rules_checked:
                print("  note: CIDR rules were not checked (no address); pass --address IP to include them")
    if args.output == "json":
        document = {"node": node.id, "policy": policy.name, "source": policy.source, "destinations": answers}
        print(json.dumps(document, indent=2))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from egress_xds.demo import run_demo

    return run_demo()


def _capture(args: argparse.Namespace) -> int:
    from egress_xds import capture

    try:
        if args.clean:
            capture.clean()
            print(f"removed the {capture.CHAIN} chains and their jumps from OUTPUT")
            return EXIT_OK
        settings = capture.CaptureSettings(
            port=args.port,
            envoy_uid=args.envoy_uid,
            exclude_cidrs=tuple(args.exclude_cidr),
            exclude_ports=tuple(args.exclude_port),
            ipv6=capture.Ipv6Handling(args.ipv6),
        )
        if args.dry_run:
            print("\n".join(capture.dry_run(settings)))
            return EXIT_OK
        capture.apply(settings)
    except capture.InvalidCaptureSettings as error:
        raise UsageError(str(error)) from None
    except capture.CaptureError as error:
        raise CommandFailed(str(error)) from None
    ipv6 = "IPv6 TCP is reset" if args.ipv6 == "reject" else "IPv6 is left alone"
    print(f"outbound TCP now goes to port {args.port}, except uid {args.envoy_uid}, loopback and exclusions; {ipv6}")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from egress_xds.listen_address import check_listen_address
    from egress_xds.logs import configure_logging
    from egress_xds.serve import ServeOptions, StartupError, serve

    if not (args.config or args.from_env or args.kubernetes):
        raise UsageError("serve needs --config FILE, --from-env or --kubernetes (or --kubernetes with one of them)")
    kubernetes = None
    if args.kubernetes:
        from egress_xds.sources.kubernetes.client import ClientSettings
        from egress_xds.sources.kubernetes.source import KubernetesOptions

        kubeconfig = Path(args.kubeconfig) if args.kubeconfig else None
        kubernetes = KubernetesOptions(client=ClientSettings(kubeconfig=kubeconfig, context=args.kube_context))

    addresses = (("--listen", args.listen), ("--metrics-address", args.metrics_address))
    for flag, address in (*addresses, ("--health-listen", args.health_listen)):
        if address is not None:
            try:
                check_listen_address(address)
            except ValueError as error:
                raise UsageError(f"{flag} {error}") from None
    tls, admin_identities = _serve_tls(args)
    configure_logging(args.log_level, args.log_format)
    options = ServeOptions(
        config=Path(args.config) if args.config else None,
        environ=dict(os.environ),
        listen=args.listen,
        debounce_ms=args.debounce_ms,
        metrics_address=args.metrics_address,
        kubernetes=kubernetes,
        from_env=bool(args.from_env),
        tls=tls,
        admin_identities=admin_identities,
        health_address=args.health_listen,
        drain_window=args.drain_window,
        max_connection_age=args.max_connection_age,
    )
    try:
        asyncio.run(serve(options))
    except StartupError as error:
        raise CommandFailed(str(error)) from None
    except OSError as error:
        raise CommandFailed(f"serve: {error}") from None
    return EXIT_OK


def _serve_tls(args: argparse.Namespace) -> tuple[Any, frozenset[Any]]:
    """`--tls-cert`, `--tls-key`, `--client-ca`, `--admin-identity`: checked together (usage errors, exit 2)."""
    from egress_xds.xds.identity import IdentityError, parse_spiffe_id
    from egress_xds.xds.tls import ServerTls

    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        raise UsageError("--client-ca needs --tls-cert and --tls-key")
    if args.admin_identity and not args.client_ca:
        raise UsageError("--admin-identity needs --client-ca (identities come from verified client certificates)")
    identities = set()
    for text in args.admin_identity:
        try:
            identities.add(parse_spiffe_id(text))
        except IdentityError as error:
            raise UsageError(f"--admin-identity {text!r}: {error}") from None
    if not args.tls_cert:
        return None, frozenset()
    client_ca = Path(args.client_ca) if args.client_ca else None
    return ServerTls(Path(args.tls_cert), Path(args.tls_key), client_ca), frozenset(identities)


def _status(args: argparse.Namespace) -> int:
    from egress_xds.admin.client import StatusAnswers, status_answers
    from egress_xds.admin.out_of_sync import OutOfSync, out_of_sync
    from egress_xds.admin.replicas import Replica, ask_replicas, replica_label, replica_streams
    from egress_xds.admin.server_view import server_summary
    from egress_xds.admin.status_json import status_document
    from egress_xds.admin.status_view import node_detail, streams_table

    replicas, server_name = _replicas(args)
    tls = _client_tls(args, server_name)

    def ask(replica: Replica) -> StatusAnswers:
        return status_answers(replica.address, args.node or "", include_resources=bool(args.node), tls=tls)

    fan_out = ask_replicas(replicas, ask)
    if not fan_out.answers:
        raise CommandFailed("; ".join(failure.error for failure in fan_out.failures))
    for failure in fan_out.failures:
        _error(f"replica {failure.replica} did not answer, its Envoys are missing: {failure.error}")
    streams = replica_streams(fan_out, labelled=len(replicas) > 1)
    if args.node and not streams:
        elsewhere = " on the replicas that answered" if fan_out.partial else ""
        raise CommandFailed(f"no connected node {args.node!r}{elsewhere} (egress-xds status lists them all)")
    problems: list[tuple[str, OutOfSync]] = [
        (answer.replica.address, problem)
        for answer in fan_out.answers
        for problem in out_of_sync(
            answer.answer.nodes, nack_after=args.fail_nack_after, stale_after=args.fail_stale_after
        )
    ]
    if args.output == "json":
        print(json.dumps(status_document(fan_out, problems), indent=2))
    elif args.node:
        print("\n".join(node_detail(stream.node, stream.server_time, stream.replica) for stream in streams), end="")
    else:
        for answer in fan_out.answers:
            label = replica_label(answer) if len(replicas) > 1 else answer.replica.address
            print(server_summary(label, answer.answer.policy, answer.answer.reloads, answer.answer.nodes.server_time))
        for failure in fan_out.failures:
            print(f"server {failure.replica}: NO ANSWER: {_SCRUBBER.scrub(failure.error)}\n")
        print(streams_table(streams), end="")
    for replica, problem in problems:
        limit = args.fail_nack_after if problem.status == "NACK" else args.fail_stale_after
        where = f" on {replica}" if len(replicas) > 1 else ""
        print(f"out of sync: {problem}{where} (limit {limit:g}s)", file=sys.stderr)
    if problems:
        return EXIT_OUT_OF_SYNC
    return EXIT_PARTIAL if fan_out.partial else EXIT_OK


def _replicas(args: argparse.Namespace) -> tuple[list[Any], str | None]:
    """The replicas `status` and `traffic` ask (`--server ...`, or the Service's ready endpoints), and the name their
    certificate is checked for by default (the Service's DNS name when the addresses are pod IPs)."""
    from egress_xds.admin.replicas import replicas_of

    kubernetes = args.kubernetes or args.service is not None
    if not kubernetes:
        if args.kubeconfig or args.kube_context:
            raise UsageError("--kubeconfig and --kube-context need --kubernetes")
        servers = args.server or [SERVER_ADDRESS]
        for server in servers:
            _server_address(server)
        return replicas_of(servers), None
    if args.server:
        raise UsageError("--server and --kubernetes/--service exclude each other")
    from egress_xds.admin.service_replicas import DEFAULT_SERVICE, ReplicasNotFound, parse_service, service_replicas
    from egress_xds.sources.kubernetes.client import ClientSettings

    service = args.service or DEFAULT_SERVICE
    try:
        name, namespace = parse_service(service)
    except ValueError as error:
        raise UsageError(f"--service {error}") from None
    settings = ClientSettings(kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None, context=args.kube_context)
    try:
        return service_replicas(service, settings), f"{name}.{namespace}.svc"
    except ReplicasNotFound as error:
        raise CommandFailed(str(error)) from None


def _traffic(args: argparse.Namespace) -> int:
    from egress_xds.admin.client import traffic
    from egress_xds.admin.replicas import Replica, ask_replicas, unreachable_document
    from egress_xds.admin.traffic_merge import merge_traffic
    from egress_xds.admin.traffic_view import SUGGESTED_HEADER, suggested_rules, traffic_document, traffic_table
    from egress_xds.admin.v1 import admin_pb2

    if args.node and args.namespace:
        raise UsageError("give a NODE or --namespace, not both")
    outcomes = [name.strip() for text in args.outcome for name in text.split(",") if name.strip()]
    unknown = [name for name in outcomes if name not in OUTCOMES]
    if unknown:
        raise UsageError(f"--outcome {unknown[0]!r}: expected one of {', '.join(OUTCOMES)}")
    replicas, server_name = _replicas(args)
    tls = _client_tls(args, server_name)
    request = admin_pb2.GetTrafficRequest(node_id=args.node or "", namespace=args.namespace or "", outcomes=outcomes)

    def ask(replica: Replica) -> admin_pb2.GetTrafficResponse:
        return traffic(replica.address, request, tls=tls)

    fan_out = ask_replicas(replicas, ask)
    if not fan_out.answers:
        raise CommandFailed("; ".join(failure.error for failure in fan_out.failures))
    for failure in fan_out.failures:
        _error(f"replica {failure.replica} did not answer, its counts are missing: {failure.error}")
    response = merge_traffic([answer.answer for answer in fan_out.answers])
    if args.suggest_rules:
        print(SUGGESTED_HEADER + yaml_text.dump(suggested_rules(response)), end="")
    elif args.output == "json":
        document = traffic_document(response)
        document["servers"] = [{"address": a.replica.address, "pod": a.replica.pod} for a in fan_out.answers]
        document["unreachable"] = unreachable_document(fan_out.failures)
        document["partial"] = fan_out.partial
        print(json.dumps(document, indent=2))
    else:
        print(traffic_table(response), end="")
    return EXIT_PARTIAL if fan_out.partial else EXIT_OK


def _server_address(server: str) -> None:
    from egress_xds.policy.destinations import parse_host_port

    try:
        parse_host_port(server)
    except ValueError:
        # gRPC would quote pieces of any other target in its errors, and print some to stderr itself.
        raise UsageError(f"--server {server!r}: expected HOST:PORT") from None


def _print(data: Any, output_format: str) -> None:
    if output_format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(yaml_text.dump(data), end="")


if __name__ == "__main__":
    sys.exit(main())
