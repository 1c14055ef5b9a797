"""`status --fail-nack-after N` / `--fail-stale-after N`: which streams have been NACK or STALE for N seconds or
more, by the server's clock, for scripts and probes (exit code 3)."""

from __future__ import annotations

from dataclasses import dataclass

from egress_xds.admin.status_view import STATUS_TEXT
from egress_xds.admin.v1 import admin_pb2


@dataclass(frozen=True)
class OutOfSync:
    node_id: str
    stream_id: int
    type: str  # short name: cds, lds, ...
    status: str  # "NACK" or "STALE"
    seconds: float

    def __str__(self) -> str:
        return (
            f"node {self.node_id or '(no id)'} (stream {self.stream_id}): {self.type.upper()} {self.status} "
            f"for {self.seconds:.0f}s"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "stream_id": self.stream_id,
            "type": self.type,
            "status": self.status,
            "seconds": round(self.seconds, 3),
        }


def out_of_sync(
    response: admin_pb2.ListNodesResponse, *, nack_after: float | None, stale_after: float | None
) -> list[OutOfSync]:
    """Every (stream, type) NACKed for at least `nack_after` seconds or STALE for at least `stale_after` (None:
    that status is not checked)."""
    limits = {admin_pb2.SYNC_STATUS_NACKED: nack_after, admin_pb2.SYNC_STATUS_STALE: stale_after}
    now = response.server_time.ToNanoseconds() / 1e9
    found = []
    for node in response.nodes:
        for sync in node.types:
            limit = limits.get(sync.status)
            age = now - sync.status_since.ToNanoseconds() / 1e9
            if limit is not None and age >= limit:
                found.append(OutOfSync(node.node_id, node.stream_id, sync.short_name, STATUS_TEXT[sync.status], age))
    return found
