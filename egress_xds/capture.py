"""`egress-xds capture`: the iptables rules that send a pod's outbound TCP to its Envoy sidecar.

Like istio-iptables: one chain of our own in the `nat` table, jumped to from `OUTPUT`. RETURN (leave alone) for
Envoy's own uid (or its tunnels would be captured again: a loop), anything routed over the loopback interface
(loopback addresses and the pod's own addresses: the pod talking to itself, e.g. to Envoy's readiness port, never
leaves it), excluded CIDRs (the proxy's address, say) and excluded destination ports; REDIRECT every other TCP
connection to Envoy's capture port.

Applying is idempotent (the chain is rebuilt, the jump added once) and `clean` removes exactly what was added.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from egress_xds.defaults import CAPTURE_PORT

CHAIN = "EGRESS_XDS_OUTPUT"
TABLE = "nat"
DEFAULT_ENVOY_UID = 1337
LOOPBACK = "127.0.0.0/8"
LOOPBACK_INTERFACE = "lo"  # the route to every address of the pod itself
IPTABLES_WAIT_SECONDS = "5"


class CaptureError(Exception):
    """A failure with a message for humans (missing iptables, missing privilege, a rejected rule)."""


@dataclass(frozen=True)
class CaptureSettings:
    port: int = CAPTURE_PORT
    envoy_uid: int = DEFAULT_ENVOY_UID
    exclude_cidrs: tuple[str, ...] = field(default_factory=tuple)
    exclude_ports: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for cidr in self.exclude_cidrs:
            try:
                ipaddress.IPv4Network(cidr, strict=False)
            except ValueError:
                raise CaptureError(f"--exclude-cidr {cidr!r}: not an IPv4 address or CIDR") from None
        for port in (self.port, *self.exclude_ports):
            if not 1 <= port <= 65535:
                raise CaptureError(f"port {port} out of range (expected 1-65535)")


def chain_rules(settings: CaptureSettings) -> list[list[str]]:
    """The rules of our chain, in order, as iptables arguments after `-t nat`."""
    rules = [["-A", CHAIN, "-m", "owner", "--uid-owner", str(settings.envoy_uid), "-j", "RETURN"]]
    rules.append(["-A", CHAIN, "-o", LOOPBACK_INTERFACE, "-j", "RETURN"])
    rules.append(["-A", CHAIN, "-d", LOOPBACK, "-j", "RETURN"])
    rules += [["-A", CHAIN, "-d", cidr, "-j", "RETURN"] for cidr in settings.exclude_cidrs]
    rules += [["-A", CHAIN, "-p", "tcp", "--dport", str(port), "-j", "RETURN"] for port in settings.exclude_ports]
    rules.append(["-A", CHAIN, "-p", "tcp", "-j", "REDIRECT", "--to-ports", str(settings.port)])
    return rules


JUMP = ["OUTPUT", "-p", "tcp", "-j", CHAIN]


def dry_run(settings: CaptureSettings) -> list[str]:
    """The commands `apply` would run, one per line, for humans and init containers' logs."""
    commands = [["-N", CHAIN], ["-F", CHAIN], *chain_rules(settings), ["-A", *JUMP]]
    return [" ".join(["iptables", "-t", TABLE, *command]) for command in commands]


def apply(settings: CaptureSettings) -> None:
    """Install (or rebuild) the rules. Running it twice leaves the same rules as running it once."""
    iptables = _iptables_binary()
    if _run(iptables, ["-L", CHAIN, "-n"], check=False).returncode != 0:
        _run(iptables, ["-N", CHAIN])
    _run(iptables, ["-F", CHAIN])
    for rule in chain_rules(settings):
        _run(iptables, rule)
    if _run(iptables, ["-C", *JUMP], check=False).returncode != 0:
        _run(iptables, ["-A", *JUMP])


def clean() -> None:
    """Remove the jump and our chain; nothing else is touched. Cleaning twice is not an error."""
    iptables = _iptables_binary()
    while _run(iptables, ["-C", *JUMP], check=False).returncode == 0:
        _run(iptables, ["-D", *JUMP])
    if _run(iptables, ["-L", CHAIN, "-n"], check=False).returncode == 0:
        _run(iptables, ["-F", CHAIN])
        _run(iptables, ["-X", CHAIN])


def _iptables_binary() -> str:
    found = shutil.which("iptables") or shutil.which("iptables", path="/usr/sbin:/sbin")
    if found is None:
        raise CaptureError("iptables not found: install it (Debian/Ubuntu: apt-get install iptables)")
    return found


def _run(iptables: str, arguments: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [iptables, "-w", IPTABLES_WAIT_SECONDS, "-t", TABLE, *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        message = result.stderr.strip() or f"exit code {result.returncode}"
        if "Permission denied" in message or "must be root" in message:
            raise CaptureError(f"iptables needs root or CAP_NET_ADMIN ({message})")
        raise CaptureError(f"`iptables -t {TABLE} {' '.join(arguments)}` failed: {message}")
    return result
