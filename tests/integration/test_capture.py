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
