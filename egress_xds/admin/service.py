"""`egress_xds.admin.v1.Admin` (protos/egress_xds/admin/v1/admin.proto): the project's own debug API.

Every answer is built from the live records at the moment of the call (see `state.DebugState`); nothing here
changes what Envoys are sent, except `Reload`, which goes through the same reloader as the file watcher. Every
error text it returns goes through the secret scrubber.
"""

from __future__ import annotations

import logging
import socket
import time

import grpc

from egress_xds import metrics
from egress_xds.admin import messages
from egress_xds.admin.policy_summary import policy_summary
from egress_xds.admin.redact_resources import resources_json
from egress_xds.admin.state import DebugView
from egress_xds.admin.sync import expected_set, group_labels, snapshot_of, stream_sync
from egress_xds.admin.traffic_answer import traffic_answer
from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc
from egress_xds.policy.node import PolicyGroup
from egress_xds.redact import redact_value
from egress_xds.scrub import SecretScrubber
from egress_xds.sources.reloader import ADMIN, ReloadAttempt
from egress_xds.type_urls import ads_sort_key
from egress_xds.xds.registry import StreamRecord
from egress_xds.xds.snapshot import PreparedResource

SERVICE_NAME = "egress_xds.admin.v1.Admin"

log = logging.getLogger("egress_xds.admin")


class AdminService:
    def __init__(self, state: DebugView) -> None:
        self._state = state

    def add_to_server(self, server: grpc.aio.Server) -> None:
        admin_pb2_grpc.add_AdminServicer_to_server(self, server)

    async def ListNodes(  # gRPC method name
        self, request: admin_pb2.ListNodesRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListNodesResponse:
        response = admin_pb2.ListNodesResponse()
        for record in self._records(request.node_id, request.node_id_prefix):
            response.nodes.append(
                messages.node_status(
                    record,
                    stream_sync(record, self._state.cache),
                    waiting=record.group is not None and snapshot_of(self._state.cache, record) is None,
                    include_resources=request.include_resources,
                    scrubber=self._state.scrubber,
                )
            )
        response.server_time.CopyFrom(messages.timestamp(time.time()))
        return response

    async def GetNodeConfig(  # gRPC method name
        self, request: admin_pb2.GetNodeConfigRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetNodeConfigResponse:
        records = [
            record
            for record in self._records(request.node_id, "")
            if not request.stream_id or record.stream_id == request.stream_id
        ]
        if not request.node_id or not records:
            # The id is the caller's text, quoted whole: a URL pasted as an id is shown without its userinfo.
            node_id = self._state.scrubber.scrub(repr(redact_value(request.node_id)))
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no connected node {node_id}")
        record = max(records, key=lambda item: item.stream_id)
        policy, mode = group_labels(record.group, record)
        snapshot = snapshot_of(self._state.cache, record)
        shown: list[PreparedResource] = []
        versions: dict[str, str] = {}
        for status in sorted(record.types.values(), key=lambda item: ads_sort_key(item.type_url)):
            if request.view == admin_pb2.CONFIG_VIEW_ACKED:
                resources = status.acked
                versions[status.type_url] = status.version_acked
            else:
                expected = expected_set(snapshot, status)
                resources = expected.resources if expected is not None else {}
                versions[status.type_url] = expected.version if expected is not None else ""
            shown += [resources[name] for name in sorted(resources)]
        return admin_pb2.GetNodeConfigResponse(
            node_id=record.node.id,
            stream_id=record.stream_id,
            policy=policy,
            mode=mode,
            view=request.view,
            config_json=resources_json(shown),
            versions=versions,
        )

    async def GetPolicy(  # gRPC method name
        self, request: admin_pb2.GetPolicyRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetPolicyResponse:
        response = admin_pb2.GetPolicyResponse(source=self._state.source, hostname=socket.gethostname())
        response.policies.extend(policy_summary(policy) for policy in self._state.policies().policies)
        cache = self._state.cache
        streams: dict[object, int] = {}
        for record in self._state.registry:
            streams[record.group] = streams.get(record.group, 0) + 1
        for key in sorted(cache.keys(), key=str):
            snapshot = cache.get(key)
            if snapshot is None:
                continue
            policy, mode = (key.policy, key.mode.value) if isinstance(key, PolicyGroup) else (str(key), "")
            response.snapshots.append(
                admin_pb2.SnapshotSummary(
                    policy=policy, mode=mode, versions=dict(snapshot.versions), streams=streams.get(key, 0)
                )
            )
        return response

    async def Reload(  # gRPC method name
        self, request: admin_pb2.ReloadRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ReloadResponse:
        refusal = self._state.write_access.refusal(context.peer(), context.auth_context())
        if refusal is not None:
            metrics.peer_refused("admin-write")
            log.warning("admin Reload refused: %s", refusal)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
            raise AssertionError("not reached")  # abort raises; this keeps type checkers honest
        reloader = self._state.reloader
        if reloader is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server has no policy source to reload")
            raise AssertionError("not reached")  # abort raises; this keeps type checkers honest
        attempt = await reloader.reload(ADMIN)
        return admin_pb2.ReloadResponse(attempt=_attempt(attempt, self._state.scrubber))

    async def GetReloadErrors(  # gRPC method name
        self, request: admin_pb2.GetReloadErrorsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetReloadErrorsResponse:
        response = admin_pb2.GetReloadErrorsResponse()
        reloader = self._state.reloader
        if reloader is None:
            return response
        if reloader.last is not None:
            response.last_attempt.CopyFrom(_attempt(reloader.last, self._state.scrubber))
            response.failing = not reloader.last.ok
        if reloader.last_failure is not None:
            response.last_failure.CopyFrom(_attempt(reloader.last_failure, self._state.scrubber))
        return response

    async def GetTraffic(  # gRPC method name
        self, request: admin_pb2.GetTrafficRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetTrafficResponse:
        return traffic_answer(self._state.traffic, request, self._state.scrubber, self._state.policies())

    def _records(self, node_id: str, prefix: str) -> list[StreamRecord]:
        records = [
            record
            for record in self._state.registry
            if (not node_id or record.node.id == node_id) and record.node.id.startswith(prefix)
        ]
        return sorted(records, key=lambda item: (item.node.id, item.stream_id))


def _attempt(attempt: ReloadAttempt, scrubber: SecretScrubber) -> admin_pb2.ReloadAttempt:
    """A reload attempt as the API answers it: every text through the scrubber (an error may quote the file,
    and a file that failed to load holds credentials the server never served)."""
    message = admin_pb2.ReloadAttempt(
        time=messages.timestamp(attempt.time),
        trigger=attempt.trigger,
        ok=attempt.ok,
        message=scrubber.scrub(attempt.message),
    )
    message.errors.extend(messages.config_issue(issue, scrubber) for issue in attempt.errors)
    return message
