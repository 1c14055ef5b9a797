"""What watches an ADS stream from outside: metrics and logs, through one small interface of events.

A stream reports its events here (as go-control-plane's callbacks do) and never calls metrics or logging itself;
what it keeps for the admin side is its own status record (`registry.StreamRecord`), which the debug services read.
`StreamObserver` does nothing (tests, or a server that wants neither); `MetricsAndLogs` is what `serve` runs.
Node ids and NACK messages go to logs only, never to metric labels (see `metrics`).
"""

from __future__ import annotations

import logging
import time

from egress_xds import metrics
from egress_xds.policy.node import Node
from egress_xds.type_urls import short_name
from egress_xds.xds.identity import IdentityMismatch, SpiffeId
from egress_xds.xds.registry import StreamRecord

log = logging.getLogger("egress_xds.xds")


class StreamObserver:
    """The events of a stream. Every method is called on the event loop, synchronously, and must be cheap."""

    def on_connect(self, record: StreamRecord, identity: SpiffeId | None) -> None:
        """The first request was accepted: `record` has its node, peer, protocol and group."""

    def on_refused(self, record: StreamRecord, node: Node, identity: SpiffeId, mismatch: IdentityMismatch) -> None:
        """The node's claims contradict its certificate: the stream ends PERMISSION_DENIED."""

    def on_sent(self, record: StreamRecord, type_url: str, size: int) -> None:
        """A response of `size` bytes was written."""

    def on_ack(self, record: StreamRecord, type_url: str, converged_after: float | None) -> None:
        """The latest response of a type was ACKed; `converged_after`: seconds since the change it carried reached
        the stream (None when it carried none)."""

    def on_nack(self, record: StreamRecord, type_url: str, version: str, serving: str, message: str) -> None:
        """A response of `version` was NACKed; the client keeps `serving` (its last ACKed version, or "")."""

    def on_retry(self, record: StreamRecord, type_url: str, version: str) -> None:
        """A NACKed version is sent again because the node's configuration changed since."""

    def on_invalid(self, record: StreamRecord, reason: str) -> None:
        """A request the protocol does not allow: the stream ends INVALID_ARGUMENT."""

    def on_close(self, record: StreamRecord) -> None:
        """A stream that had connected ended."""


class MetricsAndLogs(StreamObserver):
    """Prometheus metrics and the log lines of `serve`."""

    def on_connect(self, record: StreamRecord, identity: SpiffeId | None) -> None:
        metrics.stream_opened(record.protocol.value)
        log.info(
            "stream connected node=%s peer=%s identity=%s protocol=%s group=%s",
            record.node.id or "-",
            record.peer,
            identity or "-",
            record.protocol.value,
            record.group if record.group is not None else "- (no policy selects it)",
        )

    def on_refused(self, record: StreamRecord, node: Node, identity: SpiffeId, mismatch: IdentityMismatch) -> None:
        metrics.identity_mismatch(mismatch.field, mismatch.claimed, mismatch.verified)
        log.warning("stream refused: node=%s peer=%s identity=%s: %s", node.id or "-", record.peer, identity, mismatch)

    def on_sent(self, record: StreamRecord, type_url: str, size: int) -> None:
        metrics.response_sent(short_name(type_url), size)

    def on_ack(self, record: StreamRecord, type_url: str, converged_after: float | None) -> None:
        if converged_after is not None:
            metrics.converged(short_name(type_url), converged_after)

    def on_nack(self, record: StreamRecord, type_url: str, version: str, serving: str, message: str) -> None:
        metrics.nack_received(short_name(type_url))
        log.warning(
            "NACK node=%s peer=%s protocol=%s type=%s version=%s (serving %s): %s",
            record.node.id or "-",
            record.peer,
            record.protocol.value,
            type_url,
            version,
            serving or "nothing",
            " ".join(message.split()),
        )

    def on_retry(self, record: StreamRecord, type_url: str, version: str) -> None:
        log.info(
            "%s version %s was NACKed by node=%s; its configuration changed since: sending the current one again",
            short_name(type_url).upper(),
            version,
            record.node.id or "-",
        )

    def on_invalid(self, record: StreamRecord, reason: str) -> None:
        log.info(
            "stream ended: invalid request node=%s peer=%s protocol=%s: %s",
            record.node.id or "-",
            record.peer,
            record.protocol.value,
            reason,
        )

    def on_close(self, record: StreamRecord) -> None:
        metrics.stream_closed(record.protocol.value)
        log.info(
            "stream disconnected node=%s peer=%s protocol=%s after %.1fs",
            record.node.id or "-",
            record.peer,
            record.protocol.value,
            time.time() - record.connected_at,
        )


METRICS_AND_LOGS = MetricsAndLogs()
