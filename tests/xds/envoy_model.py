"""A model of how Envoy takes CDS and LDS responses: what it holds, and whether it ACKs or NACKs.

The rules are Envoy's, for the resources of `tests/xds/data.py`:
- a cluster whose endpoint port is `REJECTED_PORT`, or a listener whose tcp_proxy names a cluster the model does
  not hold (a NACK caused by another type), is refused and keeps its previous version (or stays absent);
- the rest of the response is applied, as Envoy applies listeners and clusters one by one: removals (SotW: what
  the response leaves out; Delta: `removed_resources`) and every resource not refused; a response with a refused
  resource is NACKed;
- unsubscribing (Delta) drops what was held only through the dropped names.

The model does no I/O: the state machine feeds it decoded responses and sends the requests it asks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener

from egress_xds.type_urls import CLUSTER_TYPE_URL, LISTENER_TYPE_URL, WILDCARD
from egress_xds.xds.dependencies import clusters_used_by

REJECTED_PORT = 1  # a cluster with this endpoint port is refused by the model, like an invalid cluster by Envoy
TYPES = (CLUSTER_TYPE_URL, LISTENER_TYPE_URL)


@dataclass(frozen=True)
class Held:
    """One resource the model holds: its content (what tests compare) and the server's version string."""

    content: tuple[object, ...]
    version: str
    uses: frozenset[str] = frozenset()


@dataclass
class Interest:
    """What the model subscribes to for one type."""

    wildcard: bool = True
    names: set[str] = field(default_factory=set)
    legacy: bool = True  # the wildcard of an empty first request, which ends once names are asked for

    def covers(self, name: str) -> bool:
        return self.wildcard or name in self.names

    def sotw_names(self) -> list[str]:
        """SotW resource_names: empty for the (legacy) wildcard alone, else the names and `*` if wildcard."""
        if self.legacy and self.wildcard and not self.names:
            return []
        return sorted(self.names | ({WILDCARD} if self.wildcard else set()))


def cluster_content(cluster: Cluster) -> tuple[object, ...]:
    ports = [
        endpoint.endpoint.address.socket_address.port_value
        for locality in cluster.load_assignment.endpoints
        for endpoint in locality.lb_endpoints
    ]
    return ("cluster", *ports)


def listener_content(listener: Listener) -> tuple[object, ...]:
    return ("listener", listener.address.socket_address.port_value, *sorted(clusters_used_by(listener)))


@dataclass
class EnvoyModel:
    """What one Envoy holds and how it answers. `held[type][name]`."""

    held: dict[str, dict[str, Held]] = field(default_factory=lambda: {type_url: {} for type_url in TYPES})
    interest: dict[str, Interest] = field(default_factory=lambda: {type_url: Interest() for type_url in TYPES})
    acked_version: dict[str, str] = field(default_factory=dict)  # SotW: version_info of the last ACKed response

    def clusters_in_use(self) -> set[str]:
        uses: set[str] = set()
        for listener in self.held[LISTENER_TYPE_URL].values():
            uses |= listener.uses
        return uses

    def apply(
        self, type_url: str, resources: Mapping[str, Held], removed: Iterable[str] = (), *, full_state: bool
    ) -> str | None:
        """Take one response. Returns the NACK message, or None (ACK)."""
        held = self.held[type_url]
        if type_url == LISTENER_TYPE_URL:
            clusters = self.held[CLUSTER_TYPE_URL]
            missing = {
                name: sorted(use for use in listener.uses if use not in clusters)
                for name, listener in resources.items()
            }
            refused = sorted(name for name, uses in missing.items() if uses)
            error = "; ".join(f"{name}: unknown cluster {', '.join(missing[name])}" for name in refused)
        else:
            refused = sorted(name for name, cluster in resources.items() if REJECTED_PORT in cluster.content[1:])
            error = f"cluster {', '.join(refused)}: invalid endpoint port"
        # Like Envoy: removals first (SotW: what the response leaves out), then each resource on its own; a refused
        # one keeps its previous version, or stays absent.
        new = {name: item for name, item in held.items() if name in resources} if full_state else dict(held)
        for name in removed:
            new.pop(name, None)
        new.update((name, item) for name, item in resources.items() if name not in refused)
        self.held[type_url] = new
        return error if refused else None

    def unsubscribe(self, type_url: str, names: Iterable[str]) -> None:
        """Delta: stop asking for names (or `*`) and drop what is no longer covered."""
        interest = self.interest[type_url]
        names = list(names)
        for name in names:
            if name == WILDCARD:
                interest.wildcard = interest.legacy = False
            else:
                interest.names.discard(name)
        self.held[type_url] = {name: item for name, item in self.held[type_url].items() if interest.covers(name)}

    def subscribe(self, type_url: str, names: Iterable[str]) -> None:
        interest = self.interest[type_url]
        names = list(names)
        if interest.legacy and names:  # naming resources ends the legacy wildcard; `*` keeps a wildcard
            interest.legacy = False
            interest.wildcard = WILDCARD in names
        for name in names:
            if name == WILDCARD:
                interest.wildcard = True
            else:
                interest.names.add(name)

    def versions(self, type_url: str) -> dict[str, str]:
        """Delta `initial_resource_versions` on a reconnect."""
        return {name: item.version for name, item in self.held[type_url].items()}

    def contents(self, type_url: str) -> dict[str, tuple[object, ...]]:
        return {name: item.content for name, item in self.held[type_url].items()}
