"""A small blocking client of the admin service, for `egress-xds status` (a CLI has no event loop to share)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc

from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc

TIMEOUT_SECONDS = 10.0

T = TypeVar("T")


class AdminUnavailable(Exception):
    """The server could not be asked; the message says which server and why."""


@dataclass(frozen=True)
class ClientTls:
    """`--ca FILE [--cert FILE --key FILE] [--server-name NAME]`: TLS to a server started with --tls-cert (and
    a client certificate when it requires one, --client-ca)."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None  # the name in the server's certificate, when not the --server host

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            _read(self.ca), _read(self.key) if self.key else None, _read(self.cert) if self.cert else None
        )

    def options(self) -> tuple[tuple[str, str], ...]:
        return (("grpc.ssl_target_name_override", self.server_name),) if self.server_name else ()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise AdminUnavailable(f"cannot read {path}: {(error.strerror or str(error)).lower()}") from None


@dataclass(frozen=True)
class StatusAnswers:
    """Everything `status` shows: the streams, and the server's side (its policy and its reloads)."""

    nodes: admin_pb2.ListNodesResponse
    policy: admin_pb2.GetPolicyResponse
    reloads: admin_pb2.GetReloadErrorsResponse


def status_answers(
    server: str, node_id: str = "", *, include_resources: bool = False, tls: ClientTls | None = None
) -> StatusAnswers:
    """ListNodes, GetPolicy and GetReloadErrors, on one channel."""
    request = admin_pb2.ListNodesRequest(node_id=node_id, include_resources=include_resources)
    return _ask(
        server,
        lambda stub: StatusAnswers(
            nodes=stub.ListNodes(request, timeout=TIMEOUT_SECONDS),
            policy=stub.GetPolicy(admin_pb2.GetPolicyRequest(), timeout=TIMEOUT_SECONDS),
            reloads=stub.GetReloadErrors(admin_pb2.GetReloadErrorsRequest(), timeout=TIMEOUT_SECONDS),
        ),
        tls,
    )


def traffic(
    server: str, request: admin_pb2.GetTrafficRequest, tls: ClientTls | None = None
) -> admin_pb2.GetTrafficResponse:
    """GetTraffic (`egress-xds traffic`)."""
    answer: admin_pb2.GetTrafficResponse = _ask(
        server, lambda stub: stub.GetTraffic(request, timeout=TIMEOUT_SECONDS), tls
    )
    return answer


def _ask(server: str, calls: Callable[[admin_pb2_grpc.AdminStub], T], tls: ClientTls | None = None) -> T:
    channel = (
        grpc.secure_channel(server, tls.credentials(), options=tls.options())
        if tls is not None
        else grpc.insecure_channel(server)
    )
    with channel:
        try:
            return calls(admin_pb2_grpc.AdminStub(channel))
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            name = code.name if code is not None else "error"
            raise AdminUnavailable(f"cannot ask egress-xds at {server}: {name}: {details}") from None
