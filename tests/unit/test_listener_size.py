"""The capture listener grows linearly with the policy: a NO_PROXY address's HTTP chain does not repeat the NO_PROXY
domains before it (they decide what it decides), while rules before it still come first."""

from __future__ import annotations

from pathlib import Path

from egress_xds.explain import explain, parse_destination
from egress_xds.policy import EgressPolicy
from egress_xds.policy.node import NodeMode
from egress_xds.sources.file import load_policy_file
from egress_xds.translate import translate


def corporate_policy(tmp_path: Path, domains: int, cidrs: int) -> EgressPolicy:
    entries = [f"d{index}.corp.example" for index in range(domains)]
    entries += [f"10.{index // 256}.{index % 256}.0/24" for index in range(cidrs)]
    path = tmp_path / f"policy-{domains}-{cidrs}.yaml"
    path.write_text(
        "httpProxy: http://10.255.0.1:3128\n"
        "httpsProxy: http://10.255.0.1:3128\n"
        "rules:\n"
        "  - {name: paste, domains: [paste.example], action: deny}\n"
        f"noProxy: [{', '.join(entries)}]\n"
    )
    return load_policy_file(path).policies[0]


def lds_bytes(policy: EgressPolicy) -> int:
    return sum(len(listener.SerializeToString()) for listener in translate(policy, NodeMode.SIDECAR).listeners)


def test_listener_size_is_linear_in_domains_and_cidrs(tmp_path: Path) -> None:
    small = lds_bytes(corporate_policy(tmp_path, 250, 25))
    large = lds_bytes(corporate_policy(tmp_path, 500, 50))
    assert large < 2.2 * small, (small, large)  # domains x CIDRs would be ~4x
    assert large < 600 * 1024  # a corporate NO_PROXY of 500 domains and 50 CIDRs


def test_rules_before_a_no_proxy_address_still_decide_first(tmp_path: Path) -> None:
    policy = corporate_policy(tmp_path, 3, 2)
    denied = explain(policy, parse_destination("http://paste.example", address="10.0.1.7"))
    assert (denied.verdict, denied.origin) == ("deny", "rule 1 'paste'")
    direct = explain(policy, parse_destination("http://d1.corp.example", address="10.0.1.7"))
    # Both NO_PROXY entries match and both say direct; the address entry is named.
    assert direct.verdict.startswith("direct") and direct.origin == "noProxy entry '10.0.1.0/24'"
    elsewhere = explain(policy, parse_destination("http://d1.corp.example", address="192.0.2.9"))
    assert elsewhere.verdict.startswith("direct") and elsewhere.origin == "noProxy entry 'd1.corp.example'"
