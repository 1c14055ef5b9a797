"""The HOST:PORT a server listens on: checked before anything starts, and, when binding fails, the reason.

gRPC and `prometheus_client` report a bind failure without the operating system's reason ("Failed to bind to
address ..."), so the reason is found by binding the same address once more with a plain socket, with the
options gRPC uses (SO_REUSEADDR, no SO_REUSEPORT).
"""

from __future__ import annotations

import socket

from egress_xds.policy.destinations import parse_host


def check_listen_address(text: str) -> str:
    """`host:port`, `[v6]:port` or `:port` (every address), port 0 meaning any free port. Returns the text;
    raises ValueError."""
    host, separator, port = text.rpartition(":")
    if not separator:
        raise ValueError(f"{text!r}: expected HOST:PORT (port 0: any free port)")
    if not port.isdigit() or int(port) > 65535:
        # Not quoted: what follows the last ':' may be a password (`http://alice:S3cret`); `text` is quoted by
        # the caller's scrubber, which knows the whole argument.
        shown = f"port {port}" if port.isdigit() else "the port"
        raise ValueError(f"{text!r}: {shown} is not a number from 0 to 65535")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if bare:
        try:
            parse_host(bare)
        except ValueError as error:
            raise ValueError(f"{text!r}: {error}") from None
    return text


def bind_failure(address: str) -> str:
    """Why `address` (HOST:PORT) cannot be bound now, e.g. "address already in use"."""
    return bind_problem(address) or "the server could not bind it (set GRPC_VERBOSITY=debug for gRPC's detail)"


def bind_problem(address: str) -> str | None:
    """Why `address` (HOST:PORT) cannot be bound now, or None if it can (with SO_REUSEADDR, as gRPC binds)."""
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        candidates = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, ValueError) as error:
        return f"cannot resolve {host!r}: {error}"
    for family, kind, protocol, _name, socket_address in candidates:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(socket_address)
            except OSError as error:
                return (error.strerror or str(error)).lower()
    return None
