import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SyncStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SYNC_STATUS_UNSPECIFIED: _ClassVar[SyncStatus]
    SYNC_STATUS_SYNCED: _ClassVar[SyncStatus]
    SYNC_STATUS_NOT_SENT: _ClassVar[SyncStatus]
    SYNC_STATUS_STALE: _ClassVar[SyncStatus]
    SYNC_STATUS_NACKED: _ClassVar[SyncStatus]

class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_UNSPECIFIED: _ClassVar[Protocol]
    PROTOCOL_SOTW: _ClassVar[Protocol]
    PROTOCOL_DELTA: _ClassVar[Protocol]

class ConfigView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFIG_VIEW_EXPECTED: _ClassVar[ConfigView]
    CONFIG_VIEW_ACKED: _ClassVar[ConfigView]
SYNC_STATUS_UNSPECIFIED: SyncStatus
SYNC_STATUS_SYNCED: SyncStatus
SYNC_STATUS_NOT_SENT: SyncStatus
SYNC_STATUS_STALE: SyncStatus
SYNC_STATUS_NACKED: SyncStatus
PROTOCOL_UNSPECIFIED: Protocol
PROTOCOL_SOTW: Protocol
PROTOCOL_DELTA: Protocol
CONFIG_VIEW_EXPECTED: ConfigView
CONFIG_VIEW_ACKED: ConfigView

class ListNodesRequest(_message.Message):
    __slots__ = ("node_id", "node_id_prefix", "include_resources")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_id_prefix: str
    include_resources: bool
    def __init__(self, node_id: _Optional[str] = ..., node_id_prefix: _Optional[str] = ..., include_resources: _Optional[bool] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes", "server_time")
    NODES_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    server_time: _timestamp_pb2.Timestamp
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ..., server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("node_id", "cluster", "metadata", "user_agent", "stream_id", "protocol", "address", "connected_at", "policy", "mode", "waiting", "types")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_AT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    cluster: str
    metadata: _containers.ScalarMap[str, str]
    user_agent: str
    stream_id: int
    protocol: Protocol
    address: str
    connected_at: _timestamp_pb2.Timestamp
    policy: str
    mode: str
    waiting: bool
    types: _containers.RepeatedCompositeFieldContainer[TypeSync]
    def __init__(self, node_id: _Optional[str] = ..., cluster: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., user_agent: _Optional[str] = ..., stream_id: _Optional[int] = ..., protocol: _Optional[_Union[Protocol, str]] = ..., address: _Optional[str] = ..., connected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy: _Optional[str] = ..., mode: _Optional[str] = ..., waiting: _Optional[bool] = ..., types: _Optional[_Iterable[_Union[TypeSync, _Mapping]]] = ...) -> None: ...

class TypeSync(_message.Message):
    __slots__ = ("type_url", "short_name", "status", "status_since", "version_sent", "version_acked", "version_expected", "last_sent", "last_acked", "last_nack", "resources")
    TYPE_URL_FIELD_NUMBER: _ClassVar[int]
    SHORT_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_SINCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_SENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_ACKED_FIELD_NUMBER: _ClassVar[int]
    VERSION_EXPECTED_FIELD_NUMBER: _ClassVar[int]
    LAST_SENT_FIELD_NUMBER: _ClassVar[int]
    LAST_ACKED_FIELD_NUMBER: _ClassVar[int]
    LAST_NACK_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    type_url: str
    short_name: str
    status: SyncStatus
    status_since: _timestamp_pb2.Timestamp
    version_sent: str
    version_acked: str
    version_expected: str
    last_sent: _timestamp_pb2.Timestamp
    last_acked: _timestamp_pb2.Timestamp
    last_nack: Nack
    resources: _containers.RepeatedCompositeFieldContainer[ResourceSync]
    def __init__(self, type_url: _Optional[str] = ..., short_name: _Optional[str] = ..., status: _Optional[_Union[SyncStatus, str]] = ..., status_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version_sent: _Optional[str] = ..., version_acked: _Optional[str] = ..., version_expected: _Optional[str] = ..., last_sent: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_acked: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_nack: _Optional[_Union[Nack, _Mapping]] = ..., resources: _Optional[_Iterable[_Union[ResourceSync, _Mapping]]] = ...) -> None: ...

class Nack(_message.Message):
    __slots__ = ("message", "version", "time", "current")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    message: str
    version: str
    time: _timestamp_pb2.Timestamp
    current: bool
    def __init__(self, message: _Optional[str] = ..., version: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current: _Optional[bool] = ...) -> None: ...

class ResourceSync(_message.Message):
    __slots__ = ("name", "acked_version", "sent_version", "expected_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACKED_VERSION_FIELD_NUMBER: _ClassVar[int]
    SENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    acked_version: str
    sent_version: str
    expected_version: str
    def __init__(self, name: _Optional[str] = ..., acked_version: _Optional[str] = ..., sent_version: _Optional[str] = ..., expected_version: _Optional[str] = ...) -> None: ...

class GetNodeConfigRequest(_message.Message):
    __slots__ = ("node_id", "stream_id", "view")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    stream_id: int
    view: ConfigView
    def __init__(self, node_id: _Optional[str] = ..., stream_id: _Optional[int] = ..., view: _Optional[_Union[ConfigView, str]] = ...) -> None: ...

class GetNodeConfigResponse(_message.Message):
    __slots__ = ("node_id", "stream_id", "policy", "mode", "view", "config_json", "versions")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    stream_id: int
    policy: str
    mode: str
    view: ConfigView
    config_json: str
    versions: _containers.ScalarMap[str, str]
    def __init__(self, node_id: _Optional[str] = ..., stream_id: _Optional[int] = ..., policy: _Optional[str] = ..., mode: _Optional[str] = ..., view: _Optional[_Union[ConfigView, str]] = ..., config_json: _Optional[str] = ..., versions: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPolicyResponse(_message.Message):
    __slots__ = ("source", "policies", "snapshots", "hostname")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    source: str
    policies: _containers.RepeatedCompositeFieldContainer[PolicySummary]
    snapshots: _containers.RepeatedCompositeFieldContainer[SnapshotSummary]
    hostname: str
    def __init__(self, source: _Optional[str] = ..., policies: _Optional[_Iterable[_Union[PolicySummary, _Mapping]]] = ..., snapshots: _Optional[_Iterable[_Union[SnapshotSummary, _Mapping]]] = ..., hostname: _Optional[str] = ...) -> None: ...

class PolicySummary(_message.Message):
    __slots__ = ("name", "source", "nodes", "proxies", "http_proxy", "https_proxy", "no_proxy", "rules", "raw_tcp", "standalone_listeners", "forward_proxy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    PROXIES_FIELD_NUMBER: _ClassVar[int]
    HTTP_PROXY_FIELD_NUMBER: _ClassVar[int]
    HTTPS_PROXY_FIELD_NUMBER: _ClassVar[int]
    NO_PROXY_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    RAW_TCP_FIELD_NUMBER: _ClassVar[int]
    STANDALONE_LISTENERS_FIELD_NUMBER: _ClassVar[int]
    FORWARD_PROXY_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    nodes: str
    proxies: _containers.RepeatedCompositeFieldContainer[ProxySummary]
    http_proxy: str
    https_proxy: str
    no_proxy: _containers.RepeatedScalarFieldContainer[str]
    rules: _containers.RepeatedCompositeFieldContainer[RuleSummary]
    raw_tcp: str
    standalone_listeners: _containers.RepeatedScalarFieldContainer[str]
    forward_proxy: str
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ..., nodes: _Optional[str] = ..., proxies: _Optional[_Iterable[_Union[ProxySummary, _Mapping]]] = ..., http_proxy: _Optional[str] = ..., https_proxy: _Optional[str] = ..., no_proxy: _Optional[_Iterable[str]] = ..., rules: _Optional[_Iterable[_Union[RuleSummary, _Mapping]]] = ..., raw_tcp: _Optional[str] = ..., standalone_listeners: _Optional[_Iterable[str]] = ..., forward_proxy: _Optional[str] = ...) -> None: ...

class ProxySummary(_message.Message):
    __slots__ = ("name", "url", "endpoints", "credentials")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    endpoints: _containers.RepeatedScalarFieldContainer[str]
    credentials: str
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., endpoints: _Optional[_Iterable[str]] = ..., credentials: _Optional[str] = ...) -> None: ...

class RuleSummary(_message.Message):
    __slots__ = ("number", "name", "domains", "cidrs", "ports", "action")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    CIDRS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    number: int
    name: str
    domains: _containers.RepeatedScalarFieldContainer[str]
    cidrs: _containers.RepeatedScalarFieldContainer[str]
    ports: _containers.RepeatedScalarFieldContainer[int]
    action: str
    def __init__(self, number: _Optional[int] = ..., name: _Optional[str] = ..., domains: _Optional[_Iterable[str]] = ..., cidrs: _Optional[_Iterable[str]] = ..., ports: _Optional[_Iterable[int]] = ..., action: _Optional[str] = ...) -> None: ...

class SnapshotSummary(_message.Message):
    __slots__ = ("policy", "mode", "versions", "streams")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    POLICY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    policy: str
    mode: str
    versions: _containers.ScalarMap[str, str]
    streams: int
    def __init__(self, policy: _Optional[str] = ..., mode: _Optional[str] = ..., versions: _Optional[_Mapping[str, str]] = ..., streams: _Optional[int] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ("attempt",)
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    attempt: ReloadAttempt
    def __init__(self, attempt: _Optional[_Union[ReloadAttempt, _Mapping]] = ...) -> None: ...

class GetReloadErrorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetReloadErrorsResponse(_message.Message):
    __slots__ = ("failing", "last_failure", "last_attempt")
    FAILING_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    failing: bool
    last_failure: ReloadAttempt
    last_attempt: ReloadAttempt
    def __init__(self, failing: _Optional[bool] = ..., last_failure: _Optional[_Union[ReloadAttempt, _Mapping]] = ..., last_attempt: _Optional[_Union[ReloadAttempt, _Mapping]] = ...) -> None: ...

class ReloadAttempt(_message.Message):
    __slots__ = ("time", "trigger", "ok", "errors", "message")
    TIME_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    trigger: str
    ok: bool
    errors: _containers.RepeatedCompositeFieldContainer[ConfigIssue]
    message: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trigger: _Optional[str] = ..., ok: _Optional[bool] = ..., errors: _Optional[_Iterable[_Union[ConfigIssue, _Mapping]]] = ..., message: _Optional[str] = ...) -> None: ...

class ConfigIssue(_message.Message):
    __slots__ = ("source", "line", "field", "message", "text")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    source: str
    line: int
    field: str
    message: str
    text: str
    def __init__(self, source: _Optional[str] = ..., line: _Optional[int] = ..., field: _Optional[str] = ..., message: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class GetTrafficRequest(_message.Message):
    __slots__ = ("node_id", "namespace", "outcomes")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    namespace: str
    outcomes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., namespace: _Optional[str] = ..., outcomes: _Optional[_Iterable[str]] = ...) -> None: ...

class GetTrafficResponse(_message.Message):
    __slots__ = ("workloads", "server_time", "max_workloads", "max_destinations")
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    MAX_DESTINATIONS_FIELD_NUMBER: _ClassVar[int]
    workloads: _containers.RepeatedCompositeFieldContainer[WorkloadTraffic]
    server_time: _timestamp_pb2.Timestamp
    max_workloads: int
    max_destinations: int
    def __init__(self, workloads: _Optional[_Iterable[_Union[WorkloadTraffic, _Mapping]]] = ..., server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_workloads: _Optional[int] = ..., max_destinations: _Optional[int] = ...) -> None: ...

class WorkloadTraffic(_message.Message):
    __slots__ = ("node_id", "namespace", "policy", "last_seen", "destinations")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    DESTINATIONS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    namespace: str
    policy: str
    last_seen: _timestamp_pb2.Timestamp
    destinations: _containers.RepeatedCompositeFieldContainer[DestinationTraffic]
    def __init__(self, node_id: _Optional[str] = ..., namespace: _Optional[str] = ..., policy: _Optional[str] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., destinations: _Optional[_Iterable[_Union[DestinationTraffic, _Mapping]]] = ...) -> None: ...

class DestinationTraffic(_message.Message):
    __slots__ = ("destination", "other", "address", "protocol", "kind", "proxy", "decision", "outcomes", "bytes_sent", "bytes_received", "last_seen", "last_failure", "last_failure_time")
    class OutcomesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    OTHER_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROXY_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_TIME_FIELD_NUMBER: _ClassVar[int]
    destination: str
    other: bool
    address: str
    protocol: str
    kind: str
    proxy: str
    decision: str
    outcomes: _containers.ScalarMap[str, int]
    bytes_sent: int
    bytes_received: int
    last_seen: _timestamp_pb2.Timestamp
    last_failure: str
    last_failure_time: _timestamp_pb2.Timestamp
    def __init__(self, destination: _Optional[str] = ..., other: _Optional[bool] = ..., address: _Optional[str] = ..., protocol: _Optional[str] = ..., kind: _Optional[str] = ..., proxy: _Optional[str] = ..., decision: _Optional[str] = ..., outcomes: _Optional[_Mapping[str, int]] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_failure: _Optional[str] = ..., last_failure_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
