"""A small blocking client of the admin service, for `egress-xds status` (a CLI has no event loop to share)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc

TIMEOUT_SECONDS = 10.0

T = TypeVar("T")


class AdminUnavailable(Exception):
    """The server could not be asked; the message says which server and why."""


@dataclass(frozen=True)
class StatusAnswers:
    """Everything `status` shows: the streams, and the server's side (its policy and its reloads)."""

    nodes: admin_pb2.ListNodesResponse
    policy: admin_pb2.GetPolicyResponse
    reloads: admin_pb2.GetReloadErrorsResponse


def status_answers(server: str, node_id: str = "", *, include_resources: bool = False) -> StatusAnswers:
    """ListNodes, GetPolicy and GetReloadErrors, on one channel."""
    request = admin_pb2.ListNodesRequest(node_id=node_id, include_resources=include_resources)
    return _ask(
        server,
        lambda stub: StatusAnswers(
            nodes=stub.ListNodes(request, timeout=TIMEOUT_SECONDS),
            policy=stub.GetPolicy(admin_pb2.GetPolicyRequest(), timeout=TIMEOUT_SECONDS),
            reloads=stub.GetReloadErrors(admin_pb2.GetReloadErrorsRequest(), timeout=TIMEOUT_SECONDS),
        ),
    )


def _ask(server: str, calls: Callable[[admin_pb2_grpc.AdminStub], T]) -> T:
    with grpc.insecure_channel(server) as channel:
        try:
            return calls(admin_pb2_grpc.AdminStub(channel))
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            name = code.name if code is not None else "error"
            raise AdminUnavailable(f"cannot ask egress-xds at {server}: {name}: {details}") from None
