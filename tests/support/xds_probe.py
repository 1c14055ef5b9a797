"""A raw gRPC client for tests that run it inside a lab namespace: `python -m tests.support.xds_probe ARGS`.

Opens one ADS (SotW) stream with the given node and TLS material, subscribes to clusters and listeners, ACKs
what arrives for `--seconds`, and prints one JSON object: the final status code and details, and every response
received (serialized, base64) so that the test can search them for credentials. `--reload` calls the admin API's
Reload instead (`--reload-errors`: GetReloadErrors). Nothing here decides a result; the test asserts on what the
server answered.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from google.protobuf.struct_pb2 import Struct

from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc
from egress_xds.type_urls import CLUSTER_TYPE_URL, LISTENER_TYPE_URL


def _channel(args: argparse.Namespace) -> grpc.aio.Channel:
    if args.plaintext:
        return grpc.aio.insecure_channel(args.server)
    credentials = grpc.ssl_channel_credentials(
        Path(args.ca).read_bytes(),
        Path(args.key).read_bytes() if args.key else None,
        Path(args.cert).read_bytes() if args.cert else None,
    )
    options = (("grpc.ssl_target_name_override", args.server_name),) if args.server_name else ()
    return grpc.aio.secure_channel(args.server, credentials, options=options)


async def _ads(args: argparse.Namespace) -> dict[str, Any]:
    metadata = Struct()
    metadata.update(dict(item.split("=", 1) for item in args.meta))
    node = Node(id=args.node_id, metadata=metadata)
    responses: list[str] = []
    async with _channel(args) as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        try:
            # the node on the first request; listeners only once clusters arrived (a write racing a refusal would
            # make the client library report its own INTERNAL instead of the server's status)
            await call.write(DiscoveryRequest(type_url=CLUSTER_TYPE_URL, node=node))
            asked_listeners = False
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                try:
                    response = await asyncio.wait_for(call.read(), max(0.05, deadline - time.monotonic()))
                except TimeoutError:
                    break
                if response is grpc.aio.EOF:
                    break
                responses.append(base64.b64encode(response.SerializeToString()).decode())
                await call.write(
                    DiscoveryRequest(
                        type_url=response.type_url, response_nonce=response.nonce, version_info=response.version_info
                    )
                )
                if not asked_listeners:
                    asked_listeners = True
                    await call.write(DiscoveryRequest(type_url=LISTENER_TYPE_URL))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):  # the server ended the call first
            pass
        if not call.done():
            call.cancel()
        code = await call.code()
        details = await call.details()
    return {"code": code.name, "details": details or "", "responses": responses}


async def _reload(args: argparse.Namespace) -> dict[str, Any]:
    async with _channel(args) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        try:
            if args.reload_errors:  # a read RPC
                await admin.GetReloadErrors(admin_pb2.GetReloadErrorsRequest(), timeout=10)
            else:
                await admin.Reload(admin_pb2.ReloadRequest(), timeout=10)
        except grpc.aio.AioRpcError as error:
            return {"code": error.code().name, "details": error.details() or "", "responses": []}
    return {"code": "OK", "details": "", "responses": []}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--server-name")
    parser.add_argument("--plaintext", action="store_true")
    parser.add_argument("--node-id", default="probe")
    parser.add_argument("--meta", action="append", default=[])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--reload-errors", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(_reload(args) if args.reload or args.reload_errors else _ads(args))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
