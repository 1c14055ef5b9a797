"""Proxy credentials out of packed Envoy resources, for CSDS and the admin API.

The same rule as `egress_xds.redact.redact_config` (a message with a secret header `key` gets its `value`
replaced), applied to protobuf messages instead of dicts, down through every `Any` (filters carry their
configuration as `Any`, and the `Proxy-Authorization` header sits inside a tcp_proxy or a route table inside a
listener). A resource's version is a hash of its bytes, so each version is redacted once and cached.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message

from egress_xds.redact import REDACTED, SECRET_HEADERS, redact_config
from egress_xds.translate.bootstrap import resources_as_dict
from egress_xds.translate.resources import Resources
from egress_xds.type_urls import CLUSTER_TYPE_URL, LISTENER_TYPE_URL
from egress_xds.xds.snapshot import PreparedResource

CACHE_SIZE = 4096
_ANY = any_pb2.Any.DESCRIPTOR.full_name

_cache: OrderedDict[tuple[str, str], any_pb2.Any] = OrderedDict()
_cache_lock = threading.Lock()


def redacted_any(resource: PreparedResource) -> any_pb2.Any:
    """The resource packed as `Any`, with secret header values replaced (cached per type and version)."""
    key = (resource.type_url, resource.version)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    packed = any_pb2.Any()
    packed.CopyFrom(resource.packed)
    redact_message(packed)
    with _cache_lock:
        _cache[key] = packed
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return packed


def redact_message(message: Message) -> bool:
    """Replace secret header values in place, inside `Any` fields too. Returns True if anything changed."""
    if message.DESCRIPTOR.full_name == _ANY:
        return _redact_any(message)
    changed = _redact_header(message)
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            changed |= redact_message(value)
            continue
        for item in value.values() if isinstance(value, Mapping) else value:  # a map, or a repeated field
            if isinstance(item, Message):
                changed |= redact_message(item)
    return changed


def resources_json(resources: Iterable[PreparedResource]) -> str:
    """Listeners and clusters as `egress-xds render` prints them (Envoy field names), credentials redacted."""
    resources = list(resources)
    listeners: list[Listener] = []
    clusters: list[Cluster] = []
    for resource in resources:
        if resource.type_url == LISTENER_TYPE_URL:
            listener = Listener()
            resource.packed.Unpack(listener)
            listeners.append(listener)
        elif resource.type_url == CLUSTER_TYPE_URL:
            cluster = Cluster()
            resource.packed.Unpack(cluster)
            clusters.append(cluster)
    data: dict[str, Any] = redact_config(resources_as_dict(Resources.of(listeners, clusters)))
    others = [resource for resource in resources if resource.type_url not in (LISTENER_TYPE_URL, CLUSTER_TYPE_URL)]
    if others:
        data["other"] = [
            redact_config(json.loads(MessageToJson(redacted_any(resource), preserving_proto_field_name=True)))
            for resource in others
        ]
    return json.dumps(data, indent=2)


def _redact_header(message: Message) -> bool:
    fields = message.DESCRIPTOR.fields_by_name
    key, value = fields.get("key"), fields.get("value")
    if key is None or value is None or key.type != FieldDescriptor.TYPE_STRING:
        return False
    if str(getattr(message, "key")).lower() not in SECRET_HEADERS:  # noqa: B009 - only known by its descriptor
        return False
    changed = False
    if value.type == FieldDescriptor.TYPE_STRING and getattr(message, "value"):  # noqa: B009
        setattr(message, "value", REDACTED)  # noqa: B010
        changed = True
    if "raw_value" in fields and getattr(message, "raw_value"):  # noqa: B009
        setattr(message, "raw_value", REDACTED.encode())  # noqa: B010
        changed = True
    return changed


def _redact_any(packed: Message) -> bool:
    type_name = str(getattr(packed, "type_url", "")).rpartition("/")[2]
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name)
    except KeyError:
        return False  # a type this process does not know cannot hold a header we generated
    inner = message_factory.GetMessageClass(descriptor)()
    if not packed.Unpack(inner) or not redact_message(inner):  # type: ignore[attr-defined]
        return False
    packed.Pack(inner)  # type: ignore[attr-defined]
    return True
