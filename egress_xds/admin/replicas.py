"""Ask every replica of the server the same thing, at once, and keep who answered what.

Each replica knows only the Envoys connected to it, so a view of the whole fleet (`status`, `traffic`) asks
them all: `ask_replicas(replicas, call)` runs `call` on every replica in parallel threads (the admin client is
blocking) and returns the answers in the order asked, each with its replica, and the replicas that did not
answer, each with its error: never silently dropped, so a caller can say the view is partial. The merging that
is specific to one RPC lives with its caller's view; `replica_streams` is the one `status` uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from egress_xds.admin.client import AdminUnavailable, StatusAnswers
from egress_xds.admin.status_view import Stream

T = TypeVar("T")
MAX_PARALLEL = 16


@dataclass(frozen=True)
class Replica:
    """One server replica: the address asked, and its pod's name when Kubernetes told us."""

    address: str  # HOST:PORT
    pod: str = ""

    def __str__(self) -> str:
        return f"{self.address} ({self.pod})" if self.pod else self.address


@dataclass(frozen=True)
class Answer(Generic[T]):
    replica: Replica
    answer: T


@dataclass(frozen=True)
class NoAnswer:
    replica: Replica
    error: str  # AdminUnavailable's text: which server and why, never a secret


@dataclass(frozen=True)
class FanOut(Generic[T]):
    answers: tuple[Answer[T], ...]
    failures: tuple[NoAnswer, ...]

    @property
    def partial(self) -> bool:
        """Some replica did not answer: the merged view misses its Envoys."""
        return bool(self.failures)


def unreachable_document(failures: Sequence[NoAnswer]) -> list[dict[str, str]]:
    """The replicas that did not answer, as `-o json` lists them (`status` and `traffic` alike)."""
    return [
        {"address": failure.replica.address, "pod": failure.replica.pod, "error": failure.error} for failure in failures
    ]


def replicas_of(addresses: Sequence[str]) -> list[Replica]:
    """`--server A --server B ...`, each once, in the order given."""
    return [Replica(address) for address in dict.fromkeys(addresses)]


def ask_replicas(replicas: Sequence[Replica], call: Callable[[Replica], T]) -> FanOut[T]:
    """`call` on every replica in parallel; an `AdminUnavailable` becomes that replica's failure (any other
    exception is a bug and propagates)."""

    def one(replica: Replica) -> Answer[T] | NoAnswer:
        try:
            return Answer(replica, call(replica))
        except AdminUnavailable as error:
            return NoAnswer(replica, str(error))

    if not replicas:
        return FanOut((), ())
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(replicas))) as pool:
        results = list(pool.map(one, replicas))
    return FanOut(
        tuple(result for result in results if isinstance(result, Answer)),
        tuple(result for result in results if isinstance(result, NoAnswer)),
    )


def replica_label(answer: Answer[StatusAnswers]) -> str:
    """How a replica is named beside its streams: the address asked, and the server's host name (a pod's name)."""
    name = answer.answer.policy.hostname or answer.replica.pod
    return f"{answer.replica.address} ({name})" if name else answer.replica.address


def replica_streams(fan_out: FanOut[StatusAnswers], *, labelled: bool = True) -> list[Stream]:
    """Every stream of every replica that answered, with its replica (unless not `labelled`: one server asked),
    sorted by node id (a node connected to two replicas shows on two adjacent rows, one per replica, in the order
    the replicas were asked)."""
    streams = [
        Stream(node, answer.answer.nodes.server_time, replica_label(answer) if labelled else "")
        for answer in fan_out.answers
        for node in answer.answer.nodes.nodes
    ]
    return sorted(streams, key=lambda stream: stream.node.node_id)  # stable: replicas stay in the order asked
