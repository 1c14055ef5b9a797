"""`egress-xds status -o json`: the admin API's answers as one JSON document, in the field names of the proto
(`protos/egress_xds/admin/v1/admin.proto`, as grpcurl prints them), every field present:

```
{"servers": [{"address": ..., "hostname": ..., "source": ..., "policies": [...], "snapshots": [...],
              "reloads": {"failing": ..., "last_attempt": {...}, "last_failure": {...}},
              "server_time": "2026-12-01T23:00:00Z"}, ...],
 "unreachable": [{"address": ..., "pod": ..., "error": ...}, ...],
 "partial": false,
 "server": {...}, "server_time": ...,   # the first replica that answered (the document of one --server)
 "nodes": [NodeStatus + {"replica": address}, ...],
 "out_of_sync": [{"node_id": ..., "stream_id": ..., "type": "lds", "status": "NACK", "seconds": 12.5,
                  "replica": address}, ...]}
```
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from egress_xds.admin.client import StatusAnswers
from egress_xds.admin.out_of_sync import OutOfSync
from egress_xds.admin.replicas import FanOut, unreachable_document


def message_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready data: proto field names, defaults included, enums by name, int64 as numbers."""
    return MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=True,
        unquote_int64_if_possible=True,
    )


def status_document(fan_out: FanOut[StatusAnswers], problems: Iterable[tuple[str, OutOfSync]]) -> dict[str, Any]:
    """`problems`: (replica address, what is out of sync on it)."""
    servers = []
    nodes = []
    for answer in fan_out.answers:
        listed = message_dict(answer.answer.nodes)
        servers.append(
            {
                "address": answer.replica.address,
                **message_dict(answer.answer.policy),
                "reloads": message_dict(answer.answer.reloads),
                "server_time": listed.get("server_time"),
            }
        )
        nodes += [{**node, "replica": answer.replica.address} for node in listed.get("nodes", [])]
    first = servers[0] if servers else None
    return {
        "servers": servers,
        "unreachable": unreachable_document(fan_out.failures),
        "partial": fan_out.partial,
        "server": {key: value for key, value in first.items() if key != "server_time"} if first else None,
        "server_time": first["server_time"] if first else None,
        "nodes": nodes,  # replica by replica, in the order asked
        "out_of_sync": [{**problem.as_dict(), "replica": replica} for replica, problem in problems],
    }
