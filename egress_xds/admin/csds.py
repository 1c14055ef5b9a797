"""CSDS (`envoy.service.status.v3.ClientStatusDiscoveryService`): what every connected Envoy was sent, ACKed and
NACKed, in the standard shape grpcurl and Envoy tooling read.

One `ClientConfig` per ADS stream, `node` as the client sent it (trimmed to its identity). Its
`generic_xds_configs` hold, per resource type the stream subscribed to (ADS order):

- one summary entry with an empty `name` (the convention Istio's proxy-status reads): `config_status` of the type
  (SYNCED, NOT_SENT, STALE, ERROR: see `admin.sync`), `client_status`, `version_info` = the version the node ACKed,
  `last_updated` = its ACK time, `error_state` while a NACK is current (Envoy's message in `details`,
  the rejected version in `version_info`), and `xds_config` = an `egress_xds.admin.v1.TypeSync` with the versions
  sent, ACKed and expected (grpcurl decodes it through reflection);
- one entry per resource the node holds, was sent, should have, or asked for by name: `version_info` and
  `xds_config` are what the node ACKed; `client_status` ACKED, REQUESTED (not ACKed yet), NACKED (a version the
  node rejected: in `error_state.failed_configuration`, with Envoy's message in `details`) or DOES_NOT_EXIST.

Resource contents are left out with `exclude_resource_contents`; otherwise they pass through `redact_resources`:
no Proxy-Authorization value ever leaves the server this way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from envoy.admin.v3.config_dump_shared_pb2 import ClientResourceStatus, UpdateFailureState
from envoy.service.status.v3 import csds_pb2_grpc
from envoy.service.status.v3.csds_pb2 import ClientConfig, ClientStatusRequest, ClientStatusResponse, ConfigStatus
from google.protobuf import any_pb2

from egress_xds.admin import messages
from egress_xds.admin.node_match import UnsupportedMatcher, any_matches, check_matchers
from egress_xds.admin.redact_resources import redacted_any
from egress_xds.admin.state import DebugView
from egress_xds.admin.sync import ResourceState, ResourceSync, SyncStatus, TypeComparison, resource_syncs, stream_sync

SERVICE_NAME = "envoy.service.status.v3.ClientStatusDiscoveryService"

CONFIG_STATUS = {
    SyncStatus.SYNCED: ConfigStatus.SYNCED,
    SyncStatus.NOT_SENT: ConfigStatus.NOT_SENT,
    SyncStatus.STALE: ConfigStatus.STALE,
    SyncStatus.NACKED: ConfigStatus.ERROR,
}


class ClientStatusService:
    """The CSDS servicer. Both RPCs answer from the live stream records; the stream form answers every request."""

    def __init__(self, state: DebugView) -> None:
        self._state = state

    def add_to_server(self, server: grpc.aio.Server) -> None:
        csds_pb2_grpc.add_ClientStatusDiscoveryServiceServicer_to_server(self, server)

    async def FetchClientStatus(  # gRPC method name
        self, request: ClientStatusRequest, context: grpc.aio.ServicerContext
    ) -> ClientStatusResponse:
        try:
            return self.client_status(request)
        except UnsupportedMatcher as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            raise  # not reached: abort raises

    async def StreamClientStatus(  # gRPC method name
        self, requests: AsyncIterator[ClientStatusRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ClientStatusResponse]:
        async for request in requests:
            try:
                yield self.client_status(request)
            except UnsupportedMatcher as error:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    def client_status(self, request: ClientStatusRequest) -> ClientStatusResponse:
        """Raises UnsupportedMatcher for a node matcher this server cannot evaluate."""
        check_matchers(request.node_matchers)
        response = ClientStatusResponse()
        contents = not request.exclude_resource_contents
        for record in sorted(self._state.registry, key=lambda item: (item.node.id, item.stream_id)):
            node = messages.node_message(record)
            if not any_matches(request.node_matchers, node):
                continue
            config = response.config.add()
            config.node.CopyFrom(node)
            for sync in stream_sync(record, self._state.cache):
                config.generic_xds_configs.append(self._summary(sync))
                config.generic_xds_configs.extend(
                    self._resource_entry(sync, resource, contents) for resource in resource_syncs(sync)
                )
        return response

    def _summary(self, sync: TypeComparison) -> ClientConfig.GenericXdsConfig:
        status = sync.status
        detail = messages.type_sync(sync, include_resources=False, scrubber=self._state.scrubber)
        packed = any_pb2.Any()
        packed.Pack(detail)
        entry = ClientConfig.GenericXdsConfig(
            type_url=status.type_url,
            version_info=status.version_acked,
            xds_config=packed,
            config_status=CONFIG_STATUS[sync.state],
            client_status=_type_client_status(sync),
        )
        if status.ack_time is not None:
            entry.last_updated.CopyFrom(messages.timestamp(status.ack_time))
        if sync.state is SyncStatus.NACKED and status.nack_message is not None:
            entry.error_state.CopyFrom(
                UpdateFailureState(
                    details=self._state.scrubber.scrub(status.nack_message),
                    version_info=status.nack_version or "",
                    last_update_attempt=messages.timestamp(status.nack_time or 0.0),
                )
            )
        return entry

    def _resource_entry(
        self, sync: TypeComparison, resource: ResourceSync, contents: bool
    ) -> ClientConfig.GenericXdsConfig:
        status = sync.status
        entry = ClientConfig.GenericXdsConfig(
            type_url=status.type_url,
            name=resource.name,
            version_info=ResourceSync.version(resource.acked),
            config_status=_resource_config_status(sync, resource),
            client_status=_resource_client_status(resource),
        )
        if resource.acked is not None:
            if contents:
                entry.xds_config.CopyFrom(redacted_any(resource.acked))
            if status.ack_time is not None:
                entry.last_updated.CopyFrom(messages.timestamp(status.ack_time))
        if resource.rejected is not None:
            entry.error_state.version_info = resource.rejected.version
            entry.error_state.details = self._state.scrubber.scrub(status.nack_message or "")
            if status.nack_time is not None:
                entry.error_state.last_update_attempt.CopyFrom(messages.timestamp(status.nack_time))
            if contents:
                entry.error_state.failed_configuration.CopyFrom(redacted_any(resource.rejected))
        return entry


def _type_client_status(sync: TypeComparison) -> int:
    if sync.state is SyncStatus.NACKED:
        return int(ClientResourceStatus.NACKED)
    if sync.status.version_acked:
        return int(ClientResourceStatus.ACKED)
    return int(ClientResourceStatus.REQUESTED)


def _resource_config_status(sync: TypeComparison, resource: ResourceSync) -> int:
    state = resource.state
    if state is ResourceState.SYNCED:
        return int(ConfigStatus.SYNCED)
    if state is ResourceState.REJECTED:
        return int(ConfigStatus.ERROR)
    if state is ResourceState.ABSENT:
        return int(CONFIG_STATUS[sync.state])
    if state is ResourceState.PENDING and resource.sent is None and resource.acked is None:
        return int(ConfigStatus.NOT_SENT)
    return int(ConfigStatus.STALE)


def _resource_client_status(resource: ResourceSync) -> int:
    if resource.state is ResourceState.REJECTED:
        return int(ClientResourceStatus.NACKED)
    if resource.state is ResourceState.ABSENT:
        return int(ClientResourceStatus.DOES_NOT_EXIST)
    if resource.acked is not None:
        return int(ClientResourceStatus.ACKED)
    return int(ClientResourceStatus.REQUESTED)
