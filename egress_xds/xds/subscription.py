"""Which resources of one type a stream asked for: the wildcard and explicit-name rules of the xDS protocol.

- SotW requests carry the full list each time; Delta requests carry changes (subscribe / unsubscribe).
- `*` is the explicit wildcard. For listeners and clusters an empty *first* request is the legacy wildcard,
  which lasts while the client keeps sending empty lists (Envoy ACKs a wildcard with an empty list) and ends
  as soon as it names resources without `*`. After that an empty SotW list means "nothing".
"""

from __future__ import annotations

from collections.abc import Iterable

from egress_xds.type_urls import FULL_STATE_TYPES, WILDCARD

_NO_NAMES: frozenset[str] = frozenset()


class Subscription:
    """A stream's interest in one type: everything (wildcard), explicit names, or both.

    `names` is a frozenset, replaced and never mutated: the stream's status record shares it instead of copying it
    after each response, and an idle wildcard stream holds the empty frozenset singleton, not an empty set each.
    """

    __slots__ = ("legacy_wildcard", "names", "wildcard")

    def __init__(self) -> None:
        self.names: frozenset[str] = _NO_NAMES
        self.wildcard = False
        self.legacy_wildcard = False

    def covers(self, name: str) -> bool:
        return self.wildcard or name in self.names

    def replace(self, resource_names: Iterable[str], *, type_url: str, first: bool) -> bool:
        """Apply a SotW request's full list. True if something was newly subscribed (it must be answered)."""
        requested = set(resource_names)
        was_wildcard, old_names = self.wildcard, self.names
        if not requested and ((first and type_url in FULL_STATE_TYPES) or self.legacy_wildcard):
            self.wildcard = self.legacy_wildcard = True
            self.names = _NO_NAMES
        else:
            self.legacy_wildcard = False
            self.wildcard = WILDCARD in requested
            requested.discard(WILDCARD)
            if requested != self.names:
                self.names = frozenset(requested) if requested else _NO_NAMES
        return (self.wildcard and not was_wildcard) or not self.names <= old_names

    def unchanged_by(self, resource_names: Iterable[str]) -> bool:
        """True if a SotW request with this list would leave the subscription as it is (what `replace` keeps)."""
        if self.legacy_wildcard:
            return not any(True for _ in resource_names)
        requested = set(resource_names)
        return (WILDCARD in requested) == self.wildcard and requested.difference((WILDCARD,)) == self.names

    def start_delta(self, *, type_url: str, subscribe: Iterable[str]) -> None:
        """The first Delta request of a type: subscribing nothing to listeners or clusters is the legacy wildcard."""
        if type_url in FULL_STATE_TYPES and not list(subscribe):
            self.wildcard = self.legacy_wildcard = True

    def subscribe(self, names: Iterable[str]) -> list[str]:
        """Apply a Delta subscribe list. Returns the names to answer: every explicit name, and `*` if new."""
        requested = list(names)
        explicit = [name for name in requested if name != WILDCARD]
        answer: list[str] = []
        if explicit and self.legacy_wildcard:
            self.wildcard = self.legacy_wildcard = False
        if WILDCARD in requested:
            if not self.wildcard:
                answer.append(WILDCARD)
            self.wildcard = True
            self.legacy_wildcard = False
        if not self.names.issuperset(explicit):
            self.names = self.names.union(explicit)
        answer.extend(explicit)
        return answer

    def unsubscribe(self, names: Iterable[str]) -> None:
        """Apply a Delta unsubscribe list."""
        dropped = set(names)
        if WILDCARD in dropped:
            self.wildcard = self.legacy_wildcard = False
        if not self.names.isdisjoint(dropped):
            self.names = self.names.difference(dropped) or _NO_NAMES

    def __repr__(self) -> str:
        return f"Subscription(wildcard={self.wildcard}, names={sorted(self.names)})"
