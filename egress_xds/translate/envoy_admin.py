"""Where a bootstrapped Envoy's admin listens, and the readiness listener Kubernetes probes instead of admin.

Envoy's admin serves `/config_dump`, which holds the tunnels' `Proxy-Authorization` header (the proxy password in
base64). Every process of a pod shares its network namespace, so admin on a TCP port, even loopback, is readable
by the application. A sidecar therefore gets admin on a unix socket with mode 0600, in a directory only Envoy's
uid can enter (the pod mounts it into the Envoy container alone), and a readiness listener that answers `/ready`
and nothing else. A standalone Envoy keeps admin on loopback TCP, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import (
    DirectResponseAction,
    HeaderMatcher,
    Route,
    RouteMatch,
    VirtualHost,
)
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.http.health_check.v3.health_check_pb2 import HealthCheck
from envoy.extensions.filters.http.router.v3.router_pb2 import Router
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
    HttpFilter,
)
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from google.protobuf.wrappers_pb2 import BoolValue

from egress_xds.defaults import CAPTURE_PORT
from egress_xds.policy.destinations import parse_host_port
from egress_xds.policy.node import NodeMode
from egress_xds.translate import names
from egress_xds.translate.protobuf import typed

DEFAULT_ADMIN_ADDRESS = "127.0.0.1:9901"  # standalone
DEFAULT_ADMIN_SOCKET = "/var/run/egress-xds/envoy/admin.sock"  # sidecar
ADMIN_SOCKET_MODE = 0o600
DEFAULT_READINESS_PORT = 15021  # Istio's convention for the sidecar's readiness port
READINESS_PATH = "/ready"
MAX_SOCKET_PATH_BYTES = 107  # sun_path holds 108 bytes with the terminating NUL


@dataclass(frozen=True)
class AdminSocket:
    """Admin on a unix socket (Envoy's `pipe` address) that only Envoy's uid may connect to."""

    path: str

    def __post_init__(self) -> None:
        if self.path.startswith("@"):
            # An abstract socket has no file permissions: any process in the network namespace can connect.
            raise ValueError(
                "--admin-socket: a name starting with @ is an abstract socket, which no file mode can "
                "protect; give a file path"
            )
        if not self.path.startswith("/"):
            raise ValueError(f"--admin-socket {self.path!r}: expected an absolute path")
        if "\0" in self.path or len(self.path.encode()) > MAX_SOCKET_PATH_BYTES:
            raise ValueError(f"--admin-socket: the path must be at most {MAX_SOCKET_PATH_BYTES} bytes, without NUL")

    def config(self) -> dict[str, Any]:
        # Envoy takes the mode as a number; YAML and JSON print it in decimal (384 = 0o600).
        return {"address": {"pipe": {"path": self.path, "mode": ADMIN_SOCKET_MODE}}}


@dataclass(frozen=True)
class AdminTcp:
    """Admin on a TCP address: readable by every process that can reach it (in a pod: all of them)."""

    address: str

    def __post_init__(self) -> None:
        parse_host_port(self.address)  # ValueError names what is wrong

    def config(self) -> dict[str, Any]:
        host, port = parse_host_port(self.address)
        return {"address": {"socket_address": {"address": host, "port_value": port}}}


AdminEndpoint = AdminSocket | AdminTcp


@dataclass(frozen=True)
class AdminChoice:
    admin: AdminEndpoint
    readiness_port: int | None  # None: no readiness listener


def choose_admin(
    mode: NodeMode, *, socket: str | None = None, address: str | None = None, readiness_port: int | None = None
) -> AdminChoice:
    """The admin endpoint and readiness port for a bootstrap of `mode`, from the flags given (None: not given).

    Sidecar: admin on DEFAULT_ADMIN_SOCKET and readiness on DEFAULT_READINESS_PORT unless asked otherwise.
    Standalone: admin on DEFAULT_ADMIN_ADDRESS and no readiness listener unless asked. `readiness_port=0`: none.
    """
    if socket is not None and address is not None:
        raise ValueError("--admin-socket and --admin-address exclude each other")
    admin: AdminEndpoint
    if socket is not None:
        admin = AdminSocket(socket)
    elif address is not None:
        admin = AdminTcp(address)
    else:
        admin = AdminSocket(DEFAULT_ADMIN_SOCKET) if mode is NodeMode.SIDECAR else AdminTcp(DEFAULT_ADMIN_ADDRESS)
    if readiness_port is None:
        readiness_port = DEFAULT_READINESS_PORT if mode is NodeMode.SIDECAR else 0
    if not 0 <= readiness_port <= 65535:
        raise ValueError(f"--readiness-port {readiness_port}: out of range (expected 1-65535, or 0 for none)")
    taken = {CAPTURE_PORT} if mode is NodeMode.SIDECAR else set()
    if isinstance(admin, AdminTcp):
        taken.add(parse_host_port(admin.address)[1])
    if readiness_port in taken:
        raise ValueError(f"--readiness-port {readiness_port}: already used by the capture listener or admin")
    return AdminChoice(admin, readiness_port or None)


def readiness_listener(port: int) -> Listener:
    """A listener on every address (the kubelet probes the pod's IP) that answers `GET /ready` with 200 while
    Envoy is live (503 once it is draining or failed by `/healthcheck/fail`) and 404 with an empty body to
    anything else. It routes nowhere: no cluster, no admin, no config behind it."""
    health_check = HealthCheck(
        pass_through_mode=BoolValue(value=False),
        headers=[HeaderMatcher(name=":path", string_match=StringMatcher(exact=READINESS_PATH))],
    )
    not_found = Route(name="not-found", match=RouteMatch(prefix="/"), direct_response=DirectResponseAction(status=404))
    manager = HttpConnectionManager(
        stat_prefix=names.READINESS_LISTENER,
        route_config=RouteConfiguration(
            name=names.READINESS_LISTENER,
            virtual_hosts=[VirtualHost(name=names.READINESS_LISTENER, domains=["*"], routes=[not_found])],
        ),
        http_filters=[
            HttpFilter(name="envoy.filters.http.health_check", typed_config=typed(health_check)),
            HttpFilter(name="envoy.filters.http.router", typed_config=typed(Router())),
        ],
    )
    return Listener(
        name=names.READINESS_LISTENER,
        address=Address(socket_address=SocketAddress(address="0.0.0.0", port_value=port)),
        filter_chains=[
            FilterChain(
                filters=[Filter(name="envoy.filters.network.http_connection_manager", typed_config=typed(manager))]
            )
        ],
    )
