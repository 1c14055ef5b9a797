"""`egress-xds status -o json`: the admin API's answers as one JSON document, in the field names of the proto
(`protos/egress_xds/admin/v1/admin.proto`, as grpcurl prints them), every field present:

```
{"server": {"address": ..., "source": ..., "policies": [...], "snapshots": [...],
            "reloads": {"failing": ..., "last_attempt": {...}, "last_failure": {...}}},
 "server_time": "2026-12-01T23:00:00Z",
 "nodes": [NodeStatus, ...],
 "out_of_sync": [{"node_id": ..., "stream_id": ..., "type": "lds", "status": "NACK", "seconds": 12.5}, ...]}
```
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from egress_xds.admin.client import StatusAnswers
from egress_xds.admin.out_of_sync import OutOfSync


def message_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready data: proto field names, defaults included, enums by name, int64 as numbers."""
    return MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=True,
        unquote_int64_if_possible=True,
    )


def status_document(address: str, answers: StatusAnswers, problems: Iterable[OutOfSync]) -> dict[str, Any]:
    server = {"address": address, **message_dict(answers.policy), "reloads": message_dict(answers.reloads)}
    nodes = message_dict(answers.nodes)
    return {
        "server": server,
        "server_time": nodes.get("server_time"),
        "nodes": nodes.get("nodes", []),
        "out_of_sync": [problem.as_dict() for problem in problems],
    }
