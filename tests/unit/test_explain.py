"""`explain` reads the generated listener: a table of destinations, their verdict and the decision behind it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from egress_xds.explain import TrafficKind, explain, parse_destination
from egress_xds.policy import EgressPolicy
from egress_xds.sources.file import load_policy_file

POLICY = """
proxies:
  corp: http://10.0.0.1:3128
  partner: http://10.0.0.2:3128
httpsProxy: corp
httpProxy: corp
noProxy: ".internal,10.0.0.0/8,[fd00::1]:443"
rules:
  - {name: partner, domains: ["*.partner.test"], ports: [443], action: {proxy: partner}}
  - {name: no paste, domains: [paste.test], action: deny}
  - {name: db, cidrs: [192.0.2.0/24], ports: [5432], action: direct}
  - {name: evil net, cidrs: [198.51.100.0/24], action: deny}
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> EgressPolicy:
    path = tmp_path_factory.mktemp("explain") / "policy.yaml"
    path.write_text(textwrap.dedent(POLICY))
    (loaded,) = load_policy_file(Path(path)).policies
    return loaded


CASES = [
    ("https://api.partner.test", None, "proxy partner", "rule 1 'partner'", "CONNECT api.partner.test:443"),
    ("api.partner.test:8443", None, "proxy corp", "default: TLS uses httpsProxy", "CONNECT api.partner.test:8443"),
    ("https://paste.test/x", None, "deny", "rule 2 'no paste'", "closes"),
    ("http://paste.test/x", None, "deny", "rule 2 'no paste'", "HTTP 403"),
    ("192.0.2.9:5432", None, "direct", "rule 3 'db'", "original address"),
    ("192.0.2.9:5433", None, "proxy corp", "default: other TCP as rawTcp says", "CONNECT 192.0.2.9:5433"),
    ("https://shop.test", "198.51.100.7", "deny", "rule 4 'evil net'", "closes"),
    ("http://paste.test", "198.51.100.7", "deny", "rule 2 'no paste'", "HTTP 403"),  # the earlier domain rule wins
    ("http://shop.test", "198.51.100.7", "deny", "rule 4 'evil net'", "HTTP 403"),
    ("https://db.internal", None, "direct", "noProxy entry '.internal'", "original address"),
    ("http://db.internal:8080", None, "direct", "noProxy entry '.internal'", "original address"),
    ("10.9.9.9:22", None, "direct", "noProxy entry '10.0.0.0/8'", "original address"),
    ("[fd00::1]:443", None, "direct", "noProxy entry '[fd00::1]:443'", "original address"),
    ("https://10.0.0.1:3128", None, "direct", "built-in: the address of proxy corp", "original address"),
    ("http://www.example.test/", None, "proxy corp", "default: plain HTTP uses httpProxy", "absolute form"),
    ("https://127.0.0.1:8443", None, "direct", "built-in: loopback", "original address"),
    ("127.0.0.1:15001", None, "deny", "built-in: a connection to the capture port itself", "closes"),
    ("203.0.113.9:15001", None, "proxy corp", "default: other TCP as rawTcp says", "CONNECT 203.0.113.9:15001"),
]


@pytest.mark.parametrize(("destination", "address", "verdict", "origin", "detail"), CASES)
def test_explain(
    policy: EgressPolicy, destination: str, address: str | None, verdict: str, origin: str, detail: str
) -> None:
    answer = explain(policy, parse_destination(destination, address=address))
    assert answer.verdict.startswith(verdict), answer
    assert answer.origin.startswith(origin), answer
    assert detail in answer.detail, answer


def test_raw_tcp_shows_no_name_so_only_address_rules_apply(policy: EgressPolicy) -> None:
    probe = parse_destination("paste.test:443", protocol=TrafficKind.TCP, address="192.0.2.9")
    answer = explain(policy, probe)
    assert probe.name is None
    assert answer.verdict.startswith("proxy corp") and "CONNECT 192.0.2.9:443" in answer.detail


@pytest.mark.parametrize("bad", ["ftp://x", "10.0.0.1", "host:99999", "a..b"])
def test_bad_destinations_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_destination(bad)


def test_a_name_over_raw_tcp_needs_its_address() -> None:
    with pytest.raises(ValueError, match="--address"):
        parse_destination("api.example.com:443", protocol=TrafficKind.TCP)


def test_a_name_over_raw_tcp_is_answered_for_its_address(policy: EgressPolicy) -> None:
    answer = explain(policy, parse_destination("api.example.com:443", protocol=TrafficKind.TCP, address="198.51.100.7"))
    assert str(answer.probe) == "198.51.100.7:443" and "None" not in str(answer)
    assert answer.verdict == "deny" and answer.origin == "rule 4 'evil net'"
    answer = explain(policy, parse_destination("api.example.com:443", protocol=TrafficKind.TCP, address="203.0.113.9"))
    assert answer.proxy == "corp" and answer.detail == "sends CONNECT 203.0.113.9:443"
    assert answer.as_dict() == {
        "name": None,
        "address": "203.0.113.9",
        "port": 443,
        "protocol": "tcp",
        "verdict": "proxy",
        "proxy": "corp",
        "decision": "default: other TCP as rawTcp says",
        "chain": answer.chain,
        "envoy": "sends CONNECT 203.0.113.9:443",
    }
