"""The debug side of the server: CSDS, the egress_xds.admin.v1 service, health and reflection on the xDS port,
and the `egress-xds status` client. See the README section "Debugging a sidecar"."""

from egress_xds.admin.server import add_debug_services
from egress_xds.admin.state import DebugView
from egress_xds.sources.reloader import PolicyReloader, ReloadAttempt

__all__ = ["DebugView", "PolicyReloader", "ReloadAttempt", "add_debug_services"]
