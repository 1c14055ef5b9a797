"""From the server's records to `egress_xds.admin.v1` messages (the shapes CSDS and the admin service share)."""

from __future__ import annotations

from envoy.config.core.v3.base_pb2 import Node as NodeMessage
from google.protobuf.timestamp_pb2 import Timestamp

from egress_xds.admin.sync import ResourceSync, SyncStatus, TypeComparison, group_labels, resource_syncs
from egress_xds.admin.v1 import admin_pb2
from egress_xds.policy.errors import ConfigIssue
from egress_xds.scrub import SecretScrubber
from egress_xds.type_urls import short_name
from egress_xds.xds.registry import AdsVariant, StreamRecord

SYNC_STATUS = {
    SyncStatus.SYNCED: admin_pb2.SYNC_STATUS_SYNCED,
    SyncStatus.NOT_SENT: admin_pb2.SYNC_STATUS_NOT_SENT,
    SyncStatus.STALE: admin_pb2.SYNC_STATUS_STALE,
    SyncStatus.NACKED: admin_pb2.SYNC_STATUS_NACKED,
}
PROTOCOL = {AdsVariant.SOTW: admin_pb2.PROTOCOL_SOTW, AdsVariant.DELTA: admin_pb2.PROTOCOL_DELTA}


def timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def node_message(record: StreamRecord) -> NodeMessage:
    """The node as the client described itself (trimmed, see `StreamRecord.node_message`)."""
    if record.node_message:
        return NodeMessage.FromString(record.node_message)
    return NodeMessage(id=record.node.id)


def user_agent(node: NodeMessage) -> str:
    """`envoy 1.40.0` from `user_agent_name` and `user_agent_version` or `user_agent_build_version`."""
    version = node.user_agent_version
    if not version and node.HasField("user_agent_build_version"):
        semantic = node.user_agent_build_version.version
        version = f"{semantic.major_number}.{semantic.minor_number}.{semantic.patch}"
    return " ".join(part for part in (node.user_agent_name, version) if part)


def node_status(
    record: StreamRecord,
    syncs: list[TypeComparison],
    *,
    waiting: bool,
    include_resources: bool,
    scrubber: SecretScrubber,
) -> admin_pb2.NodeStatus:
    node = node_message(record)
    policy, mode = group_labels(record.group, record)
    message = admin_pb2.NodeStatus(
        node_id=record.node.id,
        cluster=node.cluster,
        metadata=dict(record.node.metadata),
        user_agent=user_agent(node),
        stream_id=record.stream_id,
        protocol=PROTOCOL[record.protocol],
        address=record.peer,
        connected_at=timestamp(record.connected_at),
        policy=policy,
        mode=mode,
        waiting=waiting,
    )
    message.types.extend(type_sync(sync, include_resources=include_resources, scrubber=scrubber) for sync in syncs)
    return message


def type_sync(sync: TypeComparison, *, include_resources: bool, scrubber: SecretScrubber) -> admin_pb2.TypeSync:
    status = sync.status
    message = admin_pb2.TypeSync(
        type_url=status.type_url,
        short_name=short_name(status.type_url),
        status=SYNC_STATUS[sync.state],
        status_since=timestamp(sync.since),
        version_sent=status.version_sent,
        version_acked=status.version_acked,
        version_expected=sync.expected.version if sync.expected is not None else "",
    )
    if status.last_update_time is not None:
        message.last_sent.CopyFrom(timestamp(status.last_update_time))
    if status.ack_time is not None:
        message.last_acked.CopyFrom(timestamp(status.ack_time))
    if status.nack_message is not None:
        message.last_nack.CopyFrom(
            admin_pb2.Nack(
                message=scrubber.scrub(status.nack_message),
                version=status.nack_version or "",
                time=timestamp(status.nack_time or 0.0),
                current=sync.state is SyncStatus.NACKED,
            )
        )
    if include_resources:
        message.resources.extend(resource_sync(resource) for resource in resource_syncs(sync))
    return message


def resource_sync(resource: ResourceSync) -> admin_pb2.ResourceSync:
    return admin_pb2.ResourceSync(
        name=resource.name,
        acked_version=ResourceSync.version(resource.acked),
        sent_version=ResourceSync.version(resource.sent),
        expected_version=ResourceSync.version(resource.expected),
    )


def config_issue(issue: ConfigIssue, scrubber: SecretScrubber) -> admin_pb2.ConfigIssue:
    """One problem of a policy source, every text scrubbed (messages quote what the file says)."""
    return admin_pb2.ConfigIssue(
        source=scrubber.scrub(issue.source),
        line=issue.line or 0,
        field=scrubber.scrub(issue.path),
        message=scrubber.scrub(issue.message),
        text=scrubber.scrub(str(issue)),
    )
