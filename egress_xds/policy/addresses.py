"""Address helpers shared by the policy model, the parser and the translator."""

from __future__ import annotations

import ipaddress


def is_ip_literal(host: str) -> bool:
    """True for `10.0.0.1` or `::1`, false for a hostname."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
