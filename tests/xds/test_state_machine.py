"""The xDS state machine: hypothesis drives the real ADS server (SotW and Delta) over a loopback gRPC channel.

Rules change the configuration (clusters and listeners added, changed, removed, refused by Envoy, a listener naming a
cluster that is removed), the subscriptions (wildcard, explicit names, names that do not exist, unsubscribe incl. `*`),
reconnect (SotW with the last ACKed version_info, Delta with `initial_resource_versions` of what the model holds), and
let responses flow; the Envoy model (`tests/xds/envoy_model.py`) ACKs or NACKs each response as Envoy does.

Invariants, checked on every response and when the stream settles:
- after the last change (and a bounded number of exchanges) the model holds exactly the desired set, and the server
  sends nothing more (nothing is re-sent without a change);
- CDS before LDS: a listener never arrives before a valid cluster of the configuration that it names;
- a cluster in use by a listener the model holds is never removed;
- a NACK is never answered with the same config unless something changed since, and then once;
- Delta: `removed_resources` names each name once.

CI runs a few seeded examples (the `ci` hypothesis profile); `--hypothesis-profile=long` runs many more, longer ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse, DiscoveryResponse
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.type_urls import LISTENER_TYPE_URL as LDS
from egress_xds.type_urls import WILDCARD
from egress_xds.xds.cache import SnapshotCache
from tests.xds.client import DeltaClient, SotwClient, decode
from tests.xds.conftest import Ads, group_by_metadata, open_ads
from tests.xds.data import cluster, listener, snapshot
from tests.xds.envoy_model import REJECTED_PORT, TYPES, EnvoyModel, Held, cluster_content, listener_content

CLUSTERS = ("c1", "c2", "c3")
LISTENERS = ("l1", "l2")
ABSENT = "never-configured"
QUIET = 0.12  # seconds without a response after which the stream counts as settled
SETTLE_RESPONSES = 40  # a settling stream that sends more than this is looping
SETTLE_SECONDS = 8.0

_LONG = (settings.default.max_examples if settings.default else 0) > 100  # `--hypothesis-profile=long`


Config = tuple[Mapping[str, int], Mapping[str, tuple[str, int]]]

configs = st.tuples(
    st.dictionaries(st.sampled_from(CLUSTERS), st.sampled_from([3128, 3128, 3129, REJECTED_PORT]), max_size=3),
    st.dictionaries(
        st.sampled_from(LISTENERS), st.tuples(st.sampled_from(CLUSTERS), st.sampled_from([15001, 15002])), max_size=2
    ),
)
name_sets = st.sets(st.sampled_from([*CLUSTERS, *LISTENERS, ABSENT, WILDCARD]), max_size=3)


def _snapshot_of(config: Config) -> Any:
    clusters, listeners = config
    return snapshot(
        [cluster(name, port) for name, port in clusters.items()],
        [listener(name, target, port) for name, (target, port) in listeners.items()],
    )


def _held(type_url: str, packed: Any, version: str) -> tuple[str, Held]:
    message = decode(type_url, packed)
    if type_url == CDS:
        return message.name, Held(cluster_content(message), version)
    content = listener_content(message)
    return message.name, Held(content, version, frozenset(str(use) for use in content[2:]))


class AdsMachine(RuleBasedStateMachine):
    """One Envoy (the model) on one server; subclasses pick the protocol."""

    delta: ClassVar[bool]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.stack = contextlib.AsyncExitStack()
        self.cache = SnapshotCache(group_by_metadata)
        self.ads: Ads = self.run(self.stack.enter_async_context(open_ads(self.cache)))
        self.model = EnvoyModel()
        self.config: Config = ({}, {})
        self.client: SotwClient | DeltaClient | None = None
        self.nonce: dict[str, str] = {}
        self.nacked: dict[str, tuple[object, ...]] = {}  # type -> signature of its NACKed, unanswered response
        self.changes_since_nack: dict[str, int] = {}
        self.clean = False  # every response since the last config change was built from it (CDS-before-LDS check)
        # The model ACKed an LDS response on this stream: the server knows which listeners it holds. Before that
        # (after a reconnect) it cannot: SotW requests do not say what the client holds, and Delta's initial
        # versions do not say what an older listener version uses.
        self.lds_acked = False
        self.unanswered: dict[str, int] = {}  # requests other than ACK/NACK not yet followed by a response
        # Types whose config changed since their last response: the next response may answer that change rather
        # than a request (a subscription change sent meanwhile may still be answered after it, with the same set).
        self.config_unanswered: dict[str, bool] = {}
        # A CDS subscription change was sent since the stream last settled: until the server has read it, it
        # answers from the subscription before (a listener may come before a cluster only now subscribed to, a
        # cluster the client stopped asking for is dropped even if it asks again right after). The server reads
        # one request at a time and answers it before the next, so such an answer is what the protocol allows.
        self.cds_subscription_moving = False
        self.log: list[str] = []

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def teardown(self) -> None:
        try:
            self.run(self.stack.aclose())
        finally:
            self.loop.close()

    # -- rules -------------------------------------------------------------------------------------------------

    @initialize(config=configs)
    def start(self, config: Config) -> None:
        self._set_config(config)
        self.clean = True
        self._connect()

    @rule(config=configs, drain_first=st.booleans())
    def change_config(self, config: Config, drain_first: bool) -> None:
        if drain_first:
            self.run(self._settle())
        self._set_config(config)
        self.clean = drain_first

    @rule(type_url=st.sampled_from(TYPES), names=name_sets)
    def subscribe(self, type_url: str, names: set[str]) -> None:
        self._changed()
        self.cds_subscription_moving = self.cds_subscription_moving or type_url == CDS
        self.unanswered[type_url] = self.unanswered.get(type_url, 0) + 1
        self.model.subscribe(type_url, names)
        self.log.append(f"subscribe {type_url[-7:]} {sorted(names)}")
        if isinstance(self.client, DeltaClient):
            self.run(self.client.send(type_url, sorted(names)))
        else:
            self.run(self._sotw_names(type_url))

    @rule(type_url=st.sampled_from(TYPES), names=name_sets)
    def unsubscribe(self, type_url: str, names: set[str]) -> None:
        self._changed()
        self.cds_subscription_moving = self.cds_subscription_moving or type_url == CDS
        self.unanswered[type_url] = self.unanswered.get(type_url, 0) + 1
        self.model.unsubscribe(type_url, names)
        self.log.append(f"unsubscribe {type_url[-7:]} {sorted(names)}")
        if isinstance(self.client, DeltaClient):
            self.run(self.client.send(type_url, unsubscribe=sorted(names)))
        else:
            self.run(self._sotw_names(type_url))

    @rule()
    def reconnect(self) -> None:
        self.log.append("reconnect")
        assert self.client is not None
        self.run(self.client.close())
        self._connect()

    @rule(count=st.integers(1, 3))
    def exchange(self, count: int) -> None:
        """Let a few responses flow (maybe none): the model answers each one."""
        self.run(self._exchange(count, timeout=0.05))

    @rule()
    def settle(self) -> None:
        """Let the stream settle: it must reach the desired set, then stay quiet."""
        self.run(self._converge())
        self.cds_subscription_moving = False

    # -- the model's side of the protocol ----------------------------------------------------------------------

    def _connect(self) -> None:
        self.lds_acked = False
        self.unanswered = {type_url: 1 for type_url in TYPES}
        self.config_unanswered = {}
        self.nonce = {}
        self.nacked = {}
        self.changes_since_nack = {}
        client = self.run(self._new_client())
        for type_url in TYPES:
            interest = self.model.interest[type_url]
            if not interest.wildcard and not interest.names:
                self.model.subscribe(type_url, [ABSENT])  # an empty first request would be the legacy wildcard
            names = interest.sotw_names()  # Delta: the names to subscribe to again, the same list
            if isinstance(client, DeltaClient):
                self.run(client.send(type_url, names, initial=self.model.versions(type_url)))
            else:
                self.run(client.send(type_url, names, version=self.model.acked_version.get(type_url, "")))
        self.client = client
        self.log.append("connected")

    async def _new_client(self) -> SotwClient | DeltaClient:
        return self.ads.delta() if self.delta else self.ads.sotw()  # its reader task needs the running loop

    async def _sotw_names(self, type_url: str) -> None:
        assert isinstance(self.client, SotwClient)
        names = self.model.interest[type_url].sotw_names()
        if not names and not self.model.interest[type_url].wildcard:
            names = [ABSENT]  # SotW cannot say "nothing" to a legacy wildcard; ask for a name that never exists
            self.model.subscribe(type_url, names)
        await self.client.send(
            type_url, names, nonce=self.nonce.get(type_url, ""), version=self.model.acked_version.get(type_url, "")
        )

    def _set_config(self, config: Config) -> None:
        self.config = config
        if self.cache.set_snapshot("g1", _snapshot_of(config)):
            self._changed()
            self.config_unanswered = dict.fromkeys(TYPES, True)
        self.log.append(f"config {config}")

    def _changed(self) -> None:
        for type_url in self.changes_since_nack:
            self.changes_since_nack[type_url] += 1

    async def _exchange(self, count: int, timeout: float) -> int:
        assert self.client is not None
        handled = 0
        for _ in range(count):
            try:
                response = await self.client.recv(timeout)
            except TimeoutError:
                break
            await self._answer(response)
            handled += 1
        return handled

    async def _settle(self) -> None:
        deadline = self.loop.time() + SETTLE_SECONDS
        for _ in range(SETTLE_RESPONSES):
            if not await self._exchange(1, QUIET):
                return
            assert self.loop.time() < deadline, "the stream did not settle in time"
        raise AssertionError(f"no quiet after {SETTLE_RESPONSES} responses: the server loops\n" + self._history())

    async def _answer(self, response: DiscoveryResponse | DeltaDiscoveryResponse) -> None:
        type_url = response.type_url
        assert type_url in TYPES, response
        if isinstance(response, DeltaDiscoveryResponse):
            resources = dict(_held(type_url, item.resource, item.version) for item in response.resources)
            removed = list(response.removed_resources)
            assert len(removed) == len(set(removed)), f"a name twice in removed_resources: {removed}"
            signature: tuple[object, ...] = (
                tuple(sorted((name, item.version) for name, item in resources.items())),
                tuple(sorted(removed)),
            )
            removes = [name for name in removed if name in self.model.held[type_url]]
        else:
            resources = dict(_held(type_url, item, "") for item in response.resources)
            removed = []
            signature = (response.version_info,)
            interest = self.model.interest[type_url]
            removes = [name for name in self.model.held[type_url] if name not in resources and interest.covers(name)]
        self.log.append(f"<- {type_url[-7:]} {sorted(resources)} removed={removed} nonce={response.nonce}")
        for other in self.changes_since_nack:
            if other != type_url:
                self.changes_since_nack[other] += 1
        if self.nacked.get(type_url) == signature:
            assert self.changes_since_nack[type_url] > 0, "a NACK answered with the same config\n" + self._history()
        self.nacked.pop(type_url, None)
        self.changes_since_nack.pop(type_url, None)
        if self.config_unanswered.pop(type_url, False):
            pass  # this response may be the one the config change caused: the requests may still be answered
        else:
            self.unanswered[type_url] = max(0, self.unanswered.get(type_url, 0) - 1)
        if type_url == CDS and self.lds_acked and not self.cds_subscription_moving:
            in_use = self.model.clusters_in_use() & set(removes)
            assert not in_use, f"clusters {sorted(in_use)} removed while listeners use them\n" + self._history()
        if type_url == LDS and self.clean and not self.cds_subscription_moving:
            self._check_clusters_first(resources)
        error = self.model.apply(type_url, resources, removed, full_state=not self.delta)
        self.nonce[type_url] = response.nonce
        assert self.client is not None
        if error is None:
            self.lds_acked = self.lds_acked or type_url == LDS
            if isinstance(response, DiscoveryResponse):
                self.model.acked_version[type_url] = response.version_info
            if isinstance(self.client, SotwClient):
                assert isinstance(response, DiscoveryResponse)
                await self.client.ack(response)
            else:
                assert isinstance(response, DeltaDiscoveryResponse)
                await self.client.ack(response)
            self.log.append(f"-> ACK {type_url[-7:]}")
            return
        self.nacked[type_url] = signature
        # A request sent before this response was read (a subscription change) may be answered with the same set.
        self.changes_since_nack[type_url] = self.unanswered.get(type_url, 0)
        self.log.append(f"-> NACK {type_url[-7:]}: {error}")
        if isinstance(self.client, SotwClient):
            assert isinstance(response, DiscoveryResponse)
            await self.client.nack(response, error, self.model.acked_version.get(type_url, ""))
        else:
            assert isinstance(response, DeltaDiscoveryResponse)
            await self.client.nack(response, error)

    # -- checks ------------------------------------------------------------------------------------------------

    def _check_clusters_first(self, listeners: Mapping[str, Held]) -> None:
        clusters, _ = self.config
        interest = self.model.interest[CDS]
        for name, held in listeners.items():
            for use in held.uses:
                valid = clusters.get(use, REJECTED_PORT) != REJECTED_PORT and interest.covers(use)
                assert not valid or use in self.model.held[CDS], (
                    f"listener {name} arrived before its cluster {use}\n" + self._history()
                )

    def _desired(self) -> tuple[dict[str, Any], dict[str, Any]]:
        clusters, listeners = self.config
        cds, lds = self.model.interest[CDS], self.model.interest[LDS]
        want_clusters = {
            name: cluster_content(cluster(name, port)) for name, port in clusters.items() if cds.covers(name)
        }
        want_listeners = {
            name: listener_content(listener(name, target, port))
            for name, (target, port) in listeners.items()
            if lds.covers(name)
        }
        return want_clusters, want_listeners

    async def _converge(self) -> None:
        """Exchange until quiet; a late response (a loaded machine) is waited for while the state is still wrong."""
        await self._settle()
        deadline = self.loop.time() + SETTLE_SECONDS
        while (problem := self._convergence_problem()) is not None and self.loop.time() < deadline:
            if not await self._exchange(1, 1.0):
                break
            await self._settle()
        assert problem is None, problem + "\n" + self._history()
        if self.client is not None and not self.client.responses.empty():
            response = self.client.responses.get_nowait()
            raise AssertionError(f"sent again without a change: {response}\n" + self._history())

    def _convergence_problem(self) -> str | None:
        _, listeners = self.config
        want_clusters, want_listeners = self._desired()
        consistent = all(REJECTED_PORT not in content for content in want_clusters.values()) and all(
            listeners[name][0] in want_clusters for name in want_listeners
        )
        held_clusters = self.model.contents(CDS)
        for name, content in want_clusters.items():
            if REJECTED_PORT not in content and held_clusters.get(name) != content:
                return f"cluster {name} not converged: {held_clusters.get(name)} != {content}"
        if consistent:
            held = (held_clusters, self.model.contents(LDS))
            if held != (want_clusters, want_listeners):
                return f"not converged to the desired set: {held} != {(want_clusters, want_listeners)}"
            return None
        # The server keeps a cluster while a listener the client may hold uses it: one it holds, or one of a NACKed
        # LDS response (Envoy applies listeners one by one, so it may hold some of a NACKed response).
        needed = self.model.clusters_in_use() | {target for target, _ in listeners.values()}
        extra = set(held_clusters) - set(want_clusters)
        if not extra <= needed:
            return f"clusters {sorted(extra - needed)} kept without a listener using them"
        return None

    def _history(self) -> str:
        return "\n".join(self.log[-40:])


class SotwMachine(AdsMachine):
    delta = False


class DeltaMachine(AdsMachine):
    delta = True


_SETTINGS = settings(
    max_examples=300 if _LONG else 20,
    stateful_step_count=40 if _LONG else 25,
    deadline=None,
)

TestSotwStateMachine = SotwMachine.TestCase
TestSotwStateMachine.settings = _SETTINGS
TestDeltaStateMachine = DeltaMachine.TestCase
TestDeltaStateMachine.settings = _SETTINGS
