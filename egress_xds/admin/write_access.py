"""Who may call the admin API's write RPC (`Reload`): a loopback peer, or a verified identity named with
`serve --admin-identity SPIFFE_ID`. Read RPCs are open to every peer that passed the handshake (they are redacted).

An identity counts only when the server verifies client certificates (`--client-ca`); without it a certificate is
never asked for, so only loopback peers may write.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from egress_xds.xds.identity import IdentityError, SpiffeId, identity_of


@dataclass(frozen=True)
class WriteAccess:
    admin_identities: frozenset[SpiffeId] = frozenset()
    verifies_clients: bool = False

    def refusal(self, peer: str, auth_context: Mapping[str, list[bytes]]) -> str | None:
        """None if the caller may write, else why not (for PERMISSION_DENIED; names no secret)."""
        if is_loopback_peer(peer):
            return None
        identity: SpiffeId | None = None
        if self.verifies_clients:
            try:
                identity = identity_of(auth_context)
            except IdentityError as error:
                return f"Reload is allowed from loopback or an --admin-identity; {error}"
        if identity is not None and identity in self.admin_identities:
            return None
        who = f"identity {identity}" if identity is not None else f"peer {peer}"
        return f"Reload is allowed from loopback or an --admin-identity, not from {who}"


def is_loopback_peer(peer: str) -> bool:
    """gRPC's peer string (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`) names a loopback address."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        host = rest.rpartition(":")[0]
    elif kind == "ipv6":
        host = rest.rpartition(":")[0].strip("[]").split("%")[0]
    else:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
