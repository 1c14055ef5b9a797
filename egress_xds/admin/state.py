"""What the debug services (CSDS, the admin API) read: one object handed to them by `serve`.

They only read it, on the event loop thread that runs the ADS streams, so they always see a consistent, current
picture without locks: the stream registry (what each Envoy was sent, ACKed and NACKed), the snapshot cache (what
each node should have), the policy set being served and where it came from, and the reloader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from egress_xds.admin.write_access import WriteAccess
from egress_xds.policy.model import PolicySet
from egress_xds.scrub import SecretScrubber
from egress_xds.sources.reloader import PolicyReloader
from egress_xds.traffic.store import TrafficStore
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.registry import StreamRegistry


def _no_policies() -> PolicySet:
    return PolicySet(())


@dataclass
class DebugView:
    cache: SnapshotCache
    registry: StreamRegistry
    policies: Callable[[], PolicySet] = _no_policies
    source: str = ""  # where the policy comes from, for humans: a file path, "environment", "kubernetes"
    reloader: PolicyReloader | None = None
    scrubber: SecretScrubber = field(default_factory=SecretScrubber)
    write_access: WriteAccess = field(default_factory=WriteAccess)  # who may call Reload
    traffic: TrafficStore = field(default_factory=TrafficStore)  # what Envoys' access logs said (in memory)
