"""The xDS control plane proper: a serialize-once snapshot cache and ADS (SotW + Delta) over grpc.aio.

Producers build a `Snapshot` per group of nodes and install it in a `SnapshotCache`; an `AdsServer` serves it to
Envoys; the `StreamRegistry` says what each connected stream was sent, ACKed and NACKed.
"""

from egress_xds.xds.cache import SnapshotCache, Watch
from egress_xds.xds.registry import AdsVariant, StreamRecord, StreamRegistry, TypeRecord
from egress_xds.xds.server import SERVER_OPTIONS, AdsServer, AggregatedDiscoveryService
from egress_xds.xds.snapshot import PreparedResource, ResourceSet, Snapshot

__all__ = [
    "SERVER_OPTIONS",
    "AdsServer",
    "AdsVariant",
    "AggregatedDiscoveryService",
    "PreparedResource",
    "ResourceSet",
    "Snapshot",
    "SnapshotCache",
    "StreamRecord",
    "StreamRegistry",
    "TypeRecord",
    "Watch",
]
