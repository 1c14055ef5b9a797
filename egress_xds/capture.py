"""`egress-xds capture`: the iptables rules that send a pod's outbound TCP to its Envoy sidecar.

Like istio-iptables: one chain of our own in the `nat` table, jumped to from `OUTPUT`. RETURN (leave alone) for
Envoy's own uid (or its tunnels would be captured again: a loop), anything routed over the loopback interface
(loopback addresses and the pod's own addresses: the pod talking to itself, e.g. to Envoy's readiness port, never
leaves it), excluded CIDRs (the proxy's address, say) and excluded destination ports; REDIRECT every other TCP
connection to Envoy's capture port.

IPv6 is not captured (Envoy's capture listener is on 127.0.0.1), so it must not be a way around the policy: by
default outbound IPv6 TCP is rejected at once with a TCP reset (same exceptions: Envoy's uid, loopback, excluded
CIDRs and ports), in a chain of the same name in ip6tables' `filter` table, and a client that tries IPv6 first falls
back to IPv4 without waiting. `--ipv6 leave` leaves IPv6 alone (for pods whose IPv6 traffic is governed elsewhere).
With IPv6 off in the kernel there is nothing to reject and ip6tables is not needed.

Applying is idempotent (the chain is rebuilt, the jump added once) and `clean` removes exactly what was added.
"""

from __future__ import annotations

import enum
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from egress_xds.defaults import CAPTURE_PORT
from egress_xds.policy.destinations import DestinationError, parse_address_or_network

CHAIN = "EGRESS_XDS_OUTPUT"
DEFAULT_ENVOY_UID = 1337
LOOPBACK = "127.0.0.0/8"
LOOPBACK_6 = "::1/128"
LOOPBACK_INTERFACE = "lo"  # the route to every address of the pod itself
IPTABLES_WAIT_SECONDS = "5"
MAX_UID = 2**32 - 2  # uid_t is 32 bits and (uid_t)-1 means "no uid"
IPV6_ADDRESSES = Path("/proc/net/if_inet6")  # absent when the kernel has IPv6 off


class Ipv6Handling(enum.Enum):
    REJECT = "reject"
    LEAVE = "leave"


@dataclass(frozen=True)
class _Table:
    """One iptables table of one address family: the command and the table name."""

    command: str
    name: str


_CAPTURE_TABLE = _Table("iptables", "nat")
_IPV6_TABLE = _Table("ip6tables", "filter")


class CaptureError(Exception):
    """A failure with a message for humans (missing iptables, missing privilege, a rejected rule)."""


class InvalidCaptureSettings(CaptureError):
    """A setting no rule can be made of (a port out of range, a CIDR that is none), named by its flag."""


@dataclass(frozen=True)
class CaptureSettings:
    port: int = CAPTURE_PORT
    envoy_uid: int = DEFAULT_ENVOY_UID
    exclude_cidrs: tuple[str, ...] = field(default_factory=tuple)
    exclude_ports: tuple[int, ...] = field(default_factory=tuple)
    ipv6: Ipv6Handling = Ipv6Handling.REJECT

    def __post_init__(self) -> None:
        for cidr in self.exclude_cidrs:
            if "," in cidr:
                raise InvalidCaptureSettings(f"--exclude-cidr {cidr!r}: one CIDR per flag (repeat --exclude-cidr)")
            try:
                parse_address_or_network(cidr)
            except DestinationError as error:
                raise InvalidCaptureSettings(f"--exclude-cidr: {error}") from None
        for flag, port in (("--port", self.port), *(("--exclude-port", port) for port in self.exclude_ports)):
            if not 1 <= port <= 65535:
                raise InvalidCaptureSettings(f"{flag} {port}: out of range (expected 1-65535)")
        if not 1 <= self.envoy_uid <= MAX_UID:
            raise InvalidCaptureSettings(
                f"--envoy-uid {self.envoy_uid}: expected 1-{MAX_UID}"
                " (uid 0 would exempt every root process from capture)"
            )


def chain_rules(settings: CaptureSettings) -> list[list[str]]:
    """The rules of our IPv4 chain, in order, as iptables arguments after `-t nat`."""
    redirect = ["-p", "tcp", "-j", "REDIRECT", "--to-ports", str(settings.port)]
    return _rules(settings, LOOPBACK, 4, redirect)


def ipv6_chain_rules(settings: CaptureSettings) -> list[list[str]]:
    """The rules of our IPv6 chain, as ip6tables arguments after `-t filter`: the same exceptions, then a reset."""
    return _rules(settings, LOOPBACK_6, 6, ["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"])


def _rules(settings: CaptureSettings, loopback: str, version: int, last: list[str]) -> list[list[str]]:
    cidrs = [cidr for cidr in settings.exclude_cidrs if parse_address_or_network(cidr).version == version]
    rules = [["-A", CHAIN, "-m", "owner", "--uid-owner", str(settings.envoy_uid), "-j", "RETURN"]]
    rules.append(["-A", CHAIN, "-o", LOOPBACK_INTERFACE, "-j", "RETURN"])
    rules.append(["-A", CHAIN, "-d", loopback, "-j", "RETURN"])
    rules += [["-A", CHAIN, "-d", cidr, "-j", "RETURN"] for cidr in cidrs]
    rules += [["-A", CHAIN, "-p", "tcp", "--dport", str(port), "-j", "RETURN"] for port in settings.exclude_ports]
    rules.append(["-A", CHAIN, *last])
    return rules


JUMP = ["OUTPUT", "-p", "tcp", "-j", CHAIN]


def _plan(settings: CaptureSettings) -> list[tuple[_Table, list[list[str]]]]:
    """Each table to fill, with its rules: IPv4 capture, and the IPv6 reset where IPv6 is on and not left alone."""
    plan = [(_CAPTURE_TABLE, chain_rules(settings))]
    if settings.ipv6 is Ipv6Handling.REJECT and IPV6_ADDRESSES.exists():
        plan.append((_IPV6_TABLE, ipv6_chain_rules(settings)))
    return plan


def dry_run(settings: CaptureSettings) -> list[str]:
    """The commands `apply` would run, one per line, for humans and init containers' logs."""
    lines = []
    for table, rules in _plan(settings):
        commands = [["-N", CHAIN], ["-F", CHAIN], *rules, ["-A", *JUMP]]
        lines += [" ".join([table.command, "-t", table.name, *command]) for command in commands]
    return lines


def apply(settings: CaptureSettings) -> None:
    """Install (or rebuild) the rules. Running it twice leaves the same rules as running it once; running it with
    `--ipv6 leave` after a run without removes the IPv6 rules."""
    plan = _plan(settings)
    for table, rules in plan:
        binary = _binary(table)
        if _run(binary, table, ["-L", CHAIN, "-n"], check=False).returncode != 0:
            _run(binary, table, ["-N", CHAIN])
        _run(binary, table, ["-F", CHAIN])
        for rule in rules:
            _run(binary, table, rule)
        if _run(binary, table, ["-C", *JUMP], check=False).returncode != 0:
            _run(binary, table, ["-A", *JUMP])
    if all(table is not _IPV6_TABLE for table, _ in plan):
        _remove(_IPV6_TABLE)


def clean() -> None:
    """Remove the jumps and our chains; nothing else is touched. Cleaning twice is not an error."""
    _binary(_CAPTURE_TABLE)  # says what to install when iptables is missing
    for table in (_CAPTURE_TABLE, _IPV6_TABLE):
        _remove(table)


def _remove(table: _Table) -> None:
    binary = _find(table.command)
    if binary is None:
        return  # no ip6tables: no IPv6 rules were ever added
    while _run(binary, table, ["-C", *JUMP], check=False).returncode == 0:
        _run(binary, table, ["-D", *JUMP])
    if _run(binary, table, ["-L", CHAIN, "-n"], check=False).returncode == 0:
        _run(binary, table, ["-F", CHAIN])
        _run(binary, table, ["-X", CHAIN])


def _find(command: str) -> str | None:
    return shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")


def _binary(table: _Table) -> str:
    found = _find(table.command)
    if found is None:
        hint = " or pass --ipv6 leave" if table is _IPV6_TABLE else ""
        raise CaptureError(f"{table.command} not found: install it (Debian/Ubuntu: apt-get install iptables){hint}")
    return found


def _run(
    binary: str, table: _Table, arguments: Sequence[str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    command = [binary, "-w", IPTABLES_WAIT_SECONDS, "-t", table.name, *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        message = result.stderr.strip() or f"exit code {result.returncode}"
        if "Permission denied" in message or "must be root" in message:
            raise CaptureError(f"{table.command} needs root or CAP_NET_ADMIN ({message})")
        raise CaptureError(f"`{table.command} -t {table.name} {' '.join(arguments)}` failed: {message}")
    return result
