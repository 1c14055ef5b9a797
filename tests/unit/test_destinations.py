"""One destination grammar (egress_xds/policy/destinations.py), every surface following it.

Each form is read through every surface that takes it: rule domains and CIDRs, `noProxy` in a file and NO_PROXY
in the environment, proxy URLs and `sni`, standalone targets, `explain`, the Kubernetes conversion. The
assertion is that all surfaces give the same answer (the same value, or an error with the same reason), so a
change to how a form is read shows up here on every surface at once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress_xds.explain.destination import parse_destination
from egress_xds.policy.destinations import (
    BareName,
    DestinationError,
    DomainPattern,
    host_bits_note,
    parse_domain_pattern,
    parse_host,
    parse_hostname,
    parse_network,
    parse_port,
)
from egress_xds.policy.errors import ConfigError
from egress_xds.policy.parse import parse_document_with_warnings
from egress_xds.policy.yaml_tree import LocatedDocument
from egress_xds.sources.environment import load_environment_policy
from egress_xds.sources.kubernetes.api import Kind, ResourceRef
from egress_xds.sources.kubernetes.convert import policy_from_resource
from tests.kubernetes.resources import egress_proxy

PROXY = "http://10.0.0.1:3128"
Outcome = tuple[str, Any]  # ("ok", value) or ("error", the reason as the grammar words it)


def _document(fields: dict[str, Any]) -> tuple[Any, tuple[Any, ...]]:
    policies, warnings = parse_document_with_warnings(LocatedDocument("policy.yaml", {"httpsProxy": PROXY, **fields}))
    return policies.policies[0], warnings


def _outcome(read: Callable[[], Any]) -> Outcome:
    try:
        return "ok", read()
    except ConfigError as error:
        (issue,) = error.issues
        return "error", issue.message
    except ValueError as error:
        return "error", str(error)


def _reason(outcome: Outcome) -> Outcome:
    """The grammar's own words at the end of a surface's message (surfaces prefix the field or the value)."""
    kind, value = outcome
    return (kind, value.rsplit(": ", 1)[-1]) if kind == "error" else outcome


# --- host names -------------------------------------------------------------------------------------------


def host_surfaces(host: str) -> dict[str, Outcome]:
    """The host as each surface reads it: its normal form, or the reason it is refused."""
    in_url = f"[{host}]" if ":" in host else host
    return {
        "rule domain": _outcome(lambda: _document({"rules": [{"domains": [host], "action": "direct"}]})[0].rules[0]),
        "noProxy": _outcome(lambda: _document({"noProxy": [host]})[0].no_proxy.entries[0]),
        "proxy URL": _outcome(lambda: _document({"httpsProxy": f"http://{in_url}:3128"})[0]),
        "sni": _outcome(lambda: _document({"proxies": {"p": {"url": "https://10.0.0.2", "sni": host}}})[0]),
        "standalone target": _outcome(
            lambda: _document(
                {"standalone": {"listeners": [{"name": "a", "listen": "127.0.0.1:1", "target": f"{in_url}:443"}]}}
            )[0]
        ),
        "explain": _outcome(lambda: parse_destination(f"{in_url}:443")),
    }


def host_values(host: str) -> dict[str, str]:
    """Each surface's reading of a valid host name, as the name it holds."""
    surfaces = host_surfaces(host)
    failed = {name: outcome for name, outcome in surfaces.items() if outcome[0] != "ok"}
    assert not failed, failed
    values = {name: value for name, (_, value) in surfaces.items()}
    return {
        "rule domain": values["rule domain"].domains[0].suffix,
        "noProxy": values["noProxy"].domain.suffix,
        "proxy URL": values["proxy URL"].proxies["https-proxy"].endpoints[0].host,
        "sni": values["sni"].proxies["p"].sni,
        "standalone target": values["standalone target"].standalone.listeners[0].target_host,
        "explain": values["explain"].name,
    }


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("API.Example.COM", "api.example.com"),
        ("api.example.com.", "api.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("under_score.example", "under_score.example"),
    ],
)
def test_every_surface_reads_a_host_name_the_same_way(written: str, read: str) -> None:
    assert set(host_values(written).values()) == {read}


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("-bad.example", "a label cannot start or end with '-'"),
        ("bad-.example", "a label cannot start or end with '-'"),
        ("a..example", "empty label"),
        ("exa!mple.com", "character '!' is not allowed in a host name"),
        ("10.0.0.256", "a name ending in a numeric label is not a domain"),
        ("a" * 64 + ".example", "a label is longer than 63 characters"),
    ],
)
def test_every_surface_refuses_a_bad_host_name_for_the_same_reason(written: str, reason: str) -> None:
    surfaces = host_surfaces(written)
    assert all(kind == "error" for kind, _ in surfaces.values()), surfaces
    assert all(reason in message for _, message in surfaces.values()), surfaces


# --- CIDRs and host bits ----------------------------------------------------------------------------------


def network_surfaces(cidr: str) -> dict[str, tuple[str, list[str]]]:
    """(the network read, the warnings said about it) on every surface that takes a CIDR."""
    rule_policy, rule_warnings = _document({"rules": [{"cidrs": [cidr], "action": "direct"}]})
    file_policy, file_warnings = _document({"noProxy": [cidr]})
    environment = load_environment_policy({"HTTPS_PROXY": PROXY, "NO_PROXY": cidr})
    (env_policy,) = environment.policies.policies
    resource = egress_proxy(
        "corp", "payments", httpsProxy=PROXY, noProxy=[cidr], rules=[{"cidrs": [cidr], "action": "direct"}]
    )
    converted = policy_from_resource(ResourceRef(Kind.EGRESS_PROXY, "payments", "corp"), resource, {})
    return {
        "rule cidrs": (str(rule_policy.rules[0].cidrs[0]), [w.message for w in rule_warnings]),
        "noProxy": (str(file_policy.no_proxy.entries[0].network), [w.message for w in file_warnings]),
        "NO_PROXY": (str(env_policy.no_proxy.entries[0].network), [w.message for w in environment.warnings]),
        "kubernetes rule": (str(converted.rules[0].cidrs[0]), []),
        "kubernetes noProxy": (str(converted.no_proxy.entries[0].network), []),
    }


@pytest.mark.parametrize(
    ("written", "network"),
    [
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("192.0.2.77/24", "192.0.2.0/24"),
        ("fd00::1/8", "fd00::/8"),
        ("10.0.0.0/8", "10.0.0.0/8"),
    ],
)
def test_host_bits_are_cleared_on_every_surface_and_check_says_so(written: str, network: str) -> None:
    surfaces = network_surfaces(written)
    assert {read for read, _ in surfaces.values()} == {network}, surfaces
    note = host_bits_note(written, ipaddress.ip_network(network))
    for name in ("rule cidrs", "noProxy", "NO_PROXY"):
        assert surfaces[name][1] == ([note] if note else []), (name, surfaces[name])
    assert (note is None) == (written == network)


def test_the_kubernetes_conversion_refuses_what_a_file_refuses() -> None:
    ref = ResourceRef(Kind.EGRESS_PROXY, "payments", "corp")
    resource = egress_proxy(
        "corp", "payments", httpsProxy=PROXY, rules=[{"cidrs": ["10.0.0.0/33"], "action": "direct"}]
    )
    with pytest.raises(ConfigError) as in_kubernetes:
        policy_from_resource(ref, resource, {})
    in_file = _outcome(lambda: _document({"rules": [{"cidrs": ["10.0.0.0/33"], "action": "direct"}]}))
    assert in_kubernetes.value.issues[0].message == in_file[1]


# --- ports ------------------------------------------------------------------------------------------------


def port_surfaces(port: str) -> dict[str, Outcome]:
    return {
        "proxy URL": _outcome(
            lambda: _document({"httpsProxy": f"http://10.0.0.1:{port}"})[0].proxies["https-proxy"].endpoints[0].port
        ),
        "rule ports": _outcome(
            lambda: _document({"rules": [{"ports": [port], "action": "direct"}]})[0].rules[0].ports[0]
        ),
        "noProxy": _outcome(lambda: _document({"noProxy": [f"db.example:{port}"]})[0].no_proxy.entries[0].port),
        "standalone target": _outcome(
            lambda: (
                _document(
                    {
                        "standalone": {
                            "listeners": [{"name": "a", "listen": "127.0.0.1:1", "target": f"db.example:{port}"}]
                        }
                    }
                )[0]
                .standalone.listeners[0]
                .target_port
            )
        ),
        "explain": _outcome(lambda: parse_destination(f"db.example:{port}").port),
    }


@pytest.mark.parametrize(("written", "outcome"), [("443", ("ok", 443)), ("65535", ("ok", 65535)), ("1", ("ok", 1))])
def test_every_surface_reads_a_port_the_same_way(written: str, outcome: Outcome) -> None:
    assert set(port_surfaces(written).values()) == {outcome}


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("0", "port 0 out of range (expected 1-65535)"),
        ("65536", "port 65536 out of range (expected 1-65535)"),
        ("123456", "out of range (expected 1-65535)"),
    ],
)
def test_every_surface_refuses_a_bad_port_for_the_same_reason(written: str, reason: str) -> None:
    surfaces = port_surfaces(written)
    assert all(kind == "error" and reason in message for kind, message in surfaces.values()), surfaces


# --- the grammar itself, as properties ----------------------------------------------------------------------

_labels = st.from_regex(r"\A[a-z0-9]([a-z0-9_-]{0,10}[a-z0-9])?\Z")
hostnames = st.builds(
    lambda labels, tld: ".".join([*labels, tld]), st.lists(_labels, max_size=3), st.from_regex(r"\A[a-z]{2,6}\Z")
)


@given(hostnames)
def test_a_host_name_in_normal_form_reads_as_itself(name: str) -> None:
    assert parse_hostname(name) == name == parse_host(name.upper() + ".")


@given(st.ip_addresses())
def test_an_ip_address_reads_as_itself_and_never_as_a_domain(address: Any) -> None:
    assert parse_host(str(address)) == str(address)
    with pytest.raises(DestinationError):
        parse_domain_pattern(str(address), BareName.EXACTLY)


@given(st.ip_addresses(), st.data())
def test_a_network_keeps_its_prefix_and_holds_what_was_written(address: Any, data: Any) -> None:
    prefix = data.draw(st.integers(0, address.max_prefixlen))
    network = parse_network(f"{address}/{prefix}")
    assert network.prefixlen == prefix and address in network
    assert (host_bits_note(f"{address}/{prefix}", network) is None) == (address == network.network_address)


@given(hostnames, st.sampled_from(list(BareName)))
def test_domain_pattern_forms(name: str, bare: BareName) -> None:
    assert (
        parse_domain_pattern(f"*.{name}", bare)
        == parse_domain_pattern(f".{name}", bare)
        == DomainPattern.subdomains_of(name)
    )
    pattern = parse_domain_pattern(name, bare)
    assert pattern.matches(name) and pattern.matches(f"a.{name}") == (bare is BareName.AND_SUBDOMAINS)


@given(st.one_of(st.integers(), st.text(max_size=8)))
def test_parse_port_accepts_exactly_1_to_65535(value: Any) -> None:
    text_ok = isinstance(value, str) and value.isascii() and value.isdigit() and 1 <= int(value) <= 65535
    int_ok = isinstance(value, int) and 1 <= value <= 65535
    try:
        port = parse_port(value, quote=False)
    except DestinationError as error:
        assert not (text_ok or int_ok)
        assert str(value) not in str(error) or str(value) in "the port is not a number (expected 1-65535)"
    else:
        assert text_ok or int_ok
        assert port == int(value)


def test_a_yaml_file_reaches_the_same_grammar(tmp_path: Path) -> None:
    """The file loader (YAML, lines) hands the same values on: host bits in a file are warned about with a line."""
    from egress_xds.sources.file import load_policy_file_with_warnings

    path = tmp_path / "policy.yaml"
    path.write_text(f"httpsProxy: {PROXY}\nnoProxy:\n  - localhost\n  - 10.1.2.3/8\n")
    policies, warnings = load_policy_file_with_warnings(path)
    assert str(policies.policies[0].no_proxy.entries[1].network) == "10.0.0.0/8"
    assert [(w.line, w.path) for w in warnings] == [(4, "noProxy[1]")]
