"""Small helpers for building Envoy protobuf messages."""

from __future__ import annotations

from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message


def typed(message: Message) -> any_pb2.Any:
    """Pack a message into `Any` (the form every typed_config takes)."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def milliseconds(value: int) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(value)
    return duration
