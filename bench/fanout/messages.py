"""What the coordinator and a client process say to each other over a `multiprocessing` pipe: one dataclass per
message, so both sides name the same fields."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientSpec:
    """What one client process runs: streams `first .. first + count - 1` of one protocol, over one transport.

    `ports` are the server replicas in the order new connections go to them: a connection lost moves its channel to
    the next one (as a Service does once a replica left its endpoints)."""

    ports: tuple[int, ...]
    protocol: str  # "sotw" | "delta"
    transport: str  # "h2" | "grpc"
    first: int
    count: int
    per_channel: int
    in_flight: int  # streams of this process that may wait for their first response at once (0: no limit)


@dataclass(frozen=True)
class Goal:
    """What a stream must hold to count: any version of every type (neither field set), the `targets` versions of
    every type, or every type received on one stream to the replica on `port` (a stream that moved there)."""

    targets: dict[str, str] | None = None
    port: int | None = None


# -- coordinator -> client


@dataclass(frozen=True)
class Connect:
    """Open every stream at once."""


@dataclass(frozen=True)
class AskProgress:
    goal: Goal


@dataclass(frozen=True)
class AskTimes:
    goal: Goal


@dataclass(frozen=True)
class AskCpu:
    pass


@dataclass(frozen=True)
class Stop:
    pass


# -- client -> coordinator


@dataclass(frozen=True)
class Loaded:
    pid: int


@dataclass(frozen=True)
class Connecting:
    pass


@dataclass(frozen=True)
class Progress:
    done: int  # streams that reached the goal
    gave_up: int  # streams that ran out of attempts
    failures: int  # stream attempts refused or ended so far (each retried with Envoy's backoff)


@dataclass(frozen=True)
class Times:
    times: list[float | None]  # per stream: when it reached the goal (time.monotonic), or None
    first_error: str | None  # why some stream's latest attempt ended, if one did


@dataclass(frozen=True)
class Cpu:
    seconds: float


Request = Connect | AskProgress | AskTimes | AskCpu | Stop
Reply = Loaded | Connecting | Progress | Times | Cpu
