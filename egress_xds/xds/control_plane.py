"""The `control_plane` field every response carries, so Envoy's config dump shows who configured it."""

from __future__ import annotations

from envoy.config.core.v3.base_pb2 import ControlPlane

from egress_xds import __version__
from egress_xds.xds import wire

IDENTIFIER = f"egress-xds/{__version__}"

_ENCODED = ControlPlane(identifier=IDENTIFIER).SerializeToString(deterministic=True)

SOTW_FIELD = wire.length_delimited(6, _ENCODED)  # DiscoveryResponse.control_plane
DELTA_FIELD = wire.length_delimited(7, _ENCODED)  # DeltaDiscoveryResponse.control_plane
