"""`envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs` on the xDS port: Envoy's tcp_grpc and http_grpc
access loggers (egress_xds/translate/access_log.py) stream every connection and plain-HTTP request here.

The first message of a stream names the node. With TLS client certificates its namespace is the certificate's
(as on ADS: a node whose metadata claims another is refused); without, it is the node's claim. Each entry is
classified, counted in the store and in the metrics; nothing is logged per entry, and no entry is answered (the
protocol has no per-message reply).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from egress_xds import metrics
from egress_xds.policy.model import PolicySet
from egress_xds.policy.node import NAMESPACE_METADATA_KEY, Node, select_policy
from egress_xds.traffic.entry import TrafficEvent, from_http, from_tcp
from egress_xds.traffic.outcome import REFUSALS, Outcome, classify
from egress_xds.traffic.store import TrafficStore
from egress_xds.xds.identity import IdentityError, IdentityMismatch, identity_of, verified_node
from egress_xds.xds.node import node_from_proto

SERVICE_NAME = "envoy.service.accesslog.v3.AccessLogService"
REFUSED_OUTCOMES = REFUSALS | {Outcome.PROXY_UNREACHABLE}

log = logging.getLogger("egress_xds.traffic")


class AccessLogService:
    def __init__(self, store: TrafficStore, policies: Callable[[], PolicySet]) -> None:
        self._store = store
        self._policies = policies

    def add_to_server(self, server: grpc.aio.Server) -> None:
        als_pb2_grpc.add_AccessLogServiceServicer_to_server(self, server)

    async def StreamAccessLogs(  # gRPC method name
        self, request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage], context: grpc.aio.ServicerContext
    ) -> als_pb2.StreamAccessLogsResponse:
        workload: tuple[str, str, str] | None = None
        async for message in request_iterator:
            if message.HasField("identifier"):
                workload = await self._workload(node_from_proto(message.identifier.node), context)
            if workload is None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must carry the identifier")
                raise AssertionError("not reached")  # abort raises
            now = time.time()
            for tcp_entry in message.tcp_logs.log_entry:
                self._record(workload, from_tcp(tcp_entry), now)
            for http_entry in message.http_logs.log_entry:
                self._record(workload, from_http(http_entry), now)
        return als_pb2.StreamAccessLogsResponse()

    def _record(self, workload: tuple[str, str, str], event: TrafficEvent, now: float) -> None:
        outcome = classify(event)
        self._store.record(*workload, event, outcome, now)
        metrics.traffic_logged(
            event.proxy,
            outcome.value,
            event.kind,
            refused=outcome in REFUSED_OUTCOMES,
            sent=event.bytes_sent,
            received=event.bytes_received,
        )

    async def _workload(self, node: Node, context: grpc.aio.ServicerContext) -> tuple[str, str, str]:
        """(node id, namespace, policy name) of the stream's node."""
        try:
            identity = identity_of(context.auth_context())
            if identity is not None:
                node = verified_node(node, identity)
        except (IdentityError, IdentityMismatch) as error:
            metrics.peer_refused("bad-identity")
            log.warning("access-log stream refused: peer=%s: %s", context.peer(), error)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))
            raise AssertionError("not reached") from None  # abort raises
        policy = select_policy(self._policies(), node)
        return node.id, node.metadata.get(NAMESPACE_METADATA_KEY, ""), policy.name if policy is not None else ""
