"""`egress-xds capture` against the real iptables, inside the lab's pod namespace."""

from __future__ import annotations

import sys

import pytest

from tests.support.netns import Lab

pytestmark = [pytest.mark.integration, pytest.mark.netns]

CAPTURE = [sys.executable, "-m", "egress_xds.cli", "capture"]


def nat_rules(lab: Lab) -> str:
    return lab.run("pod", ["iptables", "-w", "5", "-t", "nat", "-S"], check=True).stdout


def test_capture_is_idempotent_and_clean_removes_exactly_what_it_added(lab: Lab) -> None:
    before = nat_rules(lab)
    dry = lab.run("pod", [*CAPTURE, "--dry-run", "--exclude-cidr", "10.250.1.2/32"], check=True)
    assert "REDIRECT --to-ports 15001" in dry.stdout
    assert nat_rules(lab) == before, "--dry-run changed nothing"

    args = ["--exclude-cidr", "10.250.1.2/32", "--exclude-port", "22"]
    lab.run("pod", [*CAPTURE, *args], check=True)
    once = nat_rules(lab)
    assert "-A OUTPUT -p tcp -j EGRESS_XDS_OUTPUT" in once
    assert "-A EGRESS_XDS_OUTPUT -m owner --uid-owner 1337 -j RETURN" in once
    assert "-A EGRESS_XDS_OUTPUT -o lo -j RETURN" in once  # the pod's own addresses
    assert "-A EGRESS_XDS_OUTPUT -d 10.250.1.2/32 -j RETURN" in once
    assert "-A EGRESS_XDS_OUTPUT -p tcp -m tcp --dport 22 -j RETURN" in once
    assert "-A EGRESS_XDS_OUTPUT -p tcp -j REDIRECT --to-ports 15001" in once
    lab.run("pod", [*CAPTURE, *args], check=True)
    assert nat_rules(lab) == once, "running capture twice changes nothing the second time"

    lab.run("pod", [*CAPTURE, "--clean"], check=True)
    assert nat_rules(lab) == before
    assert lab.run("pod", [*CAPTURE, "--clean"]).returncode == 0


def test_capture_without_privilege_says_so(lab: Lab) -> None:
    # root without CAP_NET_ADMIN (an unprivileged uid could not read this machine's Python under /root)
    result = lab.run("pod", ["setpriv", "--bounding-set=-net_admin,-net_raw", *CAPTURE])
    assert result.returncode == 1, result
    assert "needs root or CAP_NET_ADMIN" in result.stderr or "Permission denied" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


POD_V6 = "fd00:250:2::1"  # assigned here, inside the lab's namespaces, on the pod<->inet link
INET_V6 = "fd00:250:2::2"
INET_V6_2 = "fd00:250:2::3"


def ipv6_rules(lab: Lab) -> str:
    return lab.run("pod", ["ip6tables", "-w", "5", "-t", "filter", "-S"], check=True).stdout


def test_ipv6_cannot_go_around_the_policy(lab: Lab) -> None:
    """IPv6 is not captured, so it is reset at once (not left to go direct, not left to time out), except for
    Envoy's uid, loopback and exclusions; --ipv6 leave leaves it alone; --clean removes the IPv6 chain too."""
    lab.run("inet", ["ip", "addr", "add", f"{INET_V6}/64", "dev", "to-pod", "nodad"], check=True)
    lab.run("inet", ["ip", "addr", "add", f"{INET_V6_2}/64", "dev", "to-pod", "nodad"], check=True)
    lab.run("pod", ["ip", "addr", "add", f"{POD_V6}/64", "dev", "to-inet", "nodad"], check=True)
    site = lab.popen("inet", ["python3", "-m", "http.server", "--bind", "::", "18080"])
    lab.wait_listening("inet", 18080, proc=site)
    before = ipv6_rules(lab)

    def fetch(address: str, user: int | None = None) -> int:
        return lab.curl("pod", ["-o", "/dev/null", f"http://[{address}]:18080/"], timeout=5, user=user).returncode

    assert fetch(INET_V6) == 0, "without capture IPv6 goes straight out: the hole this closes"
    try:
        lab.run("pod", [*CAPTURE, "--exclude-cidr", f"{INET_V6_2}/128"], check=True)
        rules = ipv6_rules(lab)
        assert "-A EGRESS_XDS_OUTPUT -p tcp -j REJECT --reject-with tcp-reset" in rules, rules
        assert "-A EGRESS_XDS_OUTPUT -d ::1/128 -j RETURN" in rules
        result = lab.curl("pod", ["-o", "/dev/null", f"http://[{INET_V6}]:18080/"], timeout=5)
        assert result.returncode == 7, result  # curl: could not connect (a reset), not 28 (a timeout)
        assert fetch(INET_V6, user=1337) == 0, "Envoy's uid is never held back"
        assert fetch(INET_V6_2) == 0, "an excluded IPv6 CIDR goes direct"
        lab.run("pod", [*CAPTURE, "--exclude-cidr", f"{INET_V6_2}/128"], check=True)
        assert ipv6_rules(lab) == rules, "idempotent for IPv6 too"

        lab.run("pod", [*CAPTURE, "--ipv6", "leave"], check=True)
        assert "EGRESS_XDS_OUTPUT" not in ipv6_rules(lab), "--ipv6 leave removes what an earlier run added"
        assert fetch(INET_V6) == 0
        assert "EGRESS_XDS_OUTPUT" in nat_rules(lab), "IPv4 capture stays"
    finally:
        lab.run("pod", [*CAPTURE, "--clean"], check=True)
    assert ipv6_rules(lab) == before
    assert fetch(INET_V6) == 0
