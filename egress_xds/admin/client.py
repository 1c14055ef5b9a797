"""A small blocking client of the admin service, for `egress-xds status` (a CLI has no event loop to share)."""

from __future__ import annotations

import grpc

from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc

DEFAULT_SERVER = "127.0.0.1:18000"
TIMEOUT_SECONDS = 10.0


class AdminUnavailable(Exception):
    """The server could not be asked; the message says which server and why."""


def list_nodes(server: str, node_id: str = "", *, include_resources: bool = False) -> admin_pb2.ListNodesResponse:
    request = admin_pb2.ListNodesRequest(node_id=node_id, include_resources=include_resources)
    with grpc.insecure_channel(server) as channel:
        stub = admin_pb2_grpc.AdminStub(channel)
        try:
            response: admin_pb2.ListNodesResponse = stub.ListNodes(request, timeout=TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            name = code.name if code is not None else "error"
            raise AdminUnavailable(f"cannot ask egress-xds at {server}: {name}: {details}") from None
    return response
