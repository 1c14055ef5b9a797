"""Test vectors for the NO_PROXY engine (Go httpproxy semantics, see docs/no_proxy.md).

Each match vector is `(no_proxy_value, host, ip, port, expected)`: `expected` is the `raw` of the entry that
`NoProxy.match` must return, `"*"` for the synthetic everything entry, or None (use the proxy). Every vector
whose expected value is None has an entry that nearly matches, so an engine that matches too much fails it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from egress_xds.policy.no_proxy import (
    EVERYTHING,
    DomainPattern,
    NoProxy,
    NoProxyEntry,
    RejectedNoProxyEntry,
    parse_no_proxy,
)

Vector = tuple[str | Sequence[str], str | None, str | None, int | None, str | None]

MATCH_VECTORS: list[Vector] = [
    # CIDR, IPv4
    ("10.0.0.0/8", None, "10.1.2.3", 443, "10.0.0.0/8"),
    ("10.0.0.0/8", None, "11.0.0.1", 443, None),
    ("192.168.0.0/16", None, "192.168.255.255", None, "192.168.0.0/16"),
    ("192.168.0.0/16", None, "192.169.0.0", None, None),
    ("10.1.2.3/8", None, "10.200.0.1", 80, "10.1.2.3/8"),  # host bits are masked, as in Go
    ("0.0.0.0/0", None, "203.0.113.9", 80, "0.0.0.0/0"),
    ("0.0.0.0/0", None, "2001:db8::1", 80, None),  # an IPv4 range never matches IPv6
    ("10.0.0.0/8", None, "::ffff:10.0.0.1", 80, "10.0.0.0/8"),  # IPv4-mapped destination
    # CIDR, IPv6
    ("fd00::/8", None, "fd12:3456::1", 443, "fd00::/8"),
    ("fd00::/8", None, "fe80::1", 443, None),
    ("2001:db8::/127", None, "2001:db8::1", None, "2001:db8::/127"),
    ("2001:db8::/127", None, "2001:db8::2", None, None),
    ("::/0", None, "2001:db8::1", 443, "::/0"),
    ("::/0", None, "10.0.0.1", 443, None),  # an IPv6 range never matches IPv4
    # IP literal, IPv4
    ("192.0.2.1", None, "192.0.2.1", 80, "192.0.2.1"),
    ("192.0.2.1", None, "192.0.2.10", 80, None),
    ("192.0.2.1", "192.0.2.1", None, 80, "192.0.2.1"),  # an IP literal as the host name
    ("192.0.2.1", "192.0.2.1.example.com", None, 80, None),
    ("::ffff:192.0.2.1", None, "192.0.2.1", 80, "::ffff:192.0.2.1"),  # mapped entry = IPv4 (as Go)
    # IP literal, IPv6
    ("2001:db8::1", None, "2001:db8:0:0:0:0:0:1", 443, "2001:db8::1"),
    ("2001:db8::1", None, "2001:db8::2", 443, None),
    ("2001:DB8::A", None, "2001:db8::a", 443, "2001:DB8::A"),
    ("2001:db8::1", "2001:db8::1", None, 443, "2001:db8::1"),
    ("::1:8080", None, "::1", 8080, None),  # unbracketed: the whole text is the address ::1:8080
    ("::1:8080", None, "::1:8080", 1, "::1:8080"),
    # IPv6 in brackets, with and without port
    ("[2001:db8::1]", None, "2001:db8::1", 443, "[2001:db8::1]"),
    ("[2001:db8::1]", None, "2001:db8::2", 443, None),
    ("[2001:db8::1]", "[2001:db8::1]", None, 443, "[2001:db8::1]"),
    ("[2001:db8::1]:8443", None, "2001:db8::1", 8443, "[2001:db8::1]:8443"),
    ("[2001:db8::1]:8443", None, "2001:db8::1", 443, None),
    ("[2001:db8::1]:8443", None, "2001:db8::1", None, None),
    ("[192.0.2.1]:8080", None, "192.0.2.1", 8080, "[192.0.2.1]:8080"),
    # ports
    ("example.com:8443", "example.com", None, 8443, "example.com:8443"),
    ("example.com:8443", "www.example.com", None, 8443, "example.com:8443"),
    ("example.com:8443", "example.com", None, 443, None),
    ("example.com:8443", "example.com", None, None, None),  # port unknown: a port entry cannot apply
    ("example.com:08443", "example.com", None, 8443, "example.com:08443"),
    ("192.0.2.1:8080", None, "192.0.2.1", 8080, "192.0.2.1:8080"),
    ("192.0.2.1:8080", None, "192.0.2.1", 80, None),
    ("*.example.com:443", "a.example.com", None, 443, "*.example.com:443"),
    ("*.example.com:443", "example.com", None, 443, None),
    ("example.com:8443,example.com", "example.com", None, 443, "example.com"),
    ("example.com, www.example.com:443", "www.example.com", None, 443, "example.com"),  # first match wins
    ("10.0.0.0/8,example.com", "www.example.com", "10.0.0.1", 443, "10.0.0.0/8"),
    ("example.com,10.0.0.0/8", "www.example.com", "10.0.0.1", 443, "example.com"),
    # `*` alone and among other entries
    ("*", "anything.test", None, 80, "*"),
    ("*", None, None, None, "*"),
    ("*", None, "10.0.0.1", 1, "*"),
    ("foo.org,*,bar.org", "example.com", None, 80, "*"),
    ("foo.org, *", "www.foo.org", None, 80, "foo.org"),  # a written entry is reported before `*`
    ("*,foo.org", "www.foo.org", None, 80, "foo.org"),
    (["foo.org", "*"], None, "10.0.0.1", 80, "*"),
    # leading dot: subdomains only
    (".example.com", "www.example.com", None, 443, ".example.com"),
    (".example.com", "a.b.example.com", None, 443, ".example.com"),
    (".example.com", "example.com", None, 443, None),
    # `*.` prefix: subdomains only
    ("*.example.com", "www.example.com", None, 443, "*.example.com"),
    ("*.example.com", "example.com", None, 443, None),
    # plain domain: the domain and its subdomains
    ("example.com", "example.com", None, 443, "example.com"),
    ("example.com", "a.b.example.com", None, 443, "example.com"),
    ("example.com", "example.org", None, 443, None),
    # trailing dot, in the entry and in the host
    ("example.com.", "example.com", None, 443, "example.com."),
    ("example.com", "www.example.com.", None, 443, "example.com"),
    ("example.com.", "example.com.", None, 443, "example.com."),
    ("example.com.", "notexample.com.", None, 443, None),
    (".example.com.", "example.com.", None, 443, None),
    (".example.com.", "www.example.com", None, 443, ".example.com."),
    # upper case
    ("EXAMPLE.COM", "www.example.com", None, 443, "EXAMPLE.COM"),
    ("example.com", "WWW.Example.COM", None, 443, "example.com"),
    ("*.EXAMPLE.com", "Www.Example.Com", None, 443, "*.EXAMPLE.com"),
    ("*.EXAMPLE.com", "EXAMPLE.COM", None, 443, None),
    # whitespace
    ("  foo.org ,\texample.com  ", "example.com", None, 443, "example.com"),
    (" example.com ", "xexample.com", None, 443, None),
    (["  example.com\n"], "example.com", None, 443, "example.com"),
    # empty entries
    (",,example.com,,", "example.com", None, 443, "example.com"),
    (", , ,foo.org,", "example.com", None, 443, None),
    (["", "example.com", " , "], "www.example.com", None, 443, "example.com"),
    # list input, items may be comma-separated
    (["example.com", "foo.org, bar.net"], "x.bar.net", None, 443, "bar.net"),
    (["example.com", "foo.org, bar.net"], "x.baz.net", None, 443, None),
    # localhost is an ordinary domain entry; loopback is not special here (the translator handles it)
    ("localhost", "localhost", None, 80, "localhost"),
    ("localhost", "api.localhost", None, 80, "localhost"),
    ("localhost", None, "127.0.0.1", 80, None),
    ("example.com", "localhost", None, 80, None),
    ("10.0.0.0/8", None, "127.0.0.1", 80, None),
    ("example.com", None, "::1", 80, None),
    # a suffix that is not on a label boundary
    ("example.com", "notexample.com", None, 443, None),
    (".example.com", "notexample.com", None, 443, None),
    ("*.example.com", "notexample.com", None, 443, None),
    ("ample.com", "example.com", None, 443, None),
    ("example.com", "example.com.evil.org", None, 443, None),
    # raw TCP (no name visible): domain entries cannot apply, only IP entries
    ("example.com", None, "93.184.216.34", 443, None),
    ("*.example.com,.example.org", None, "10.0.0.1", 443, None),
    ("example.com,10.0.0.0/8", None, "10.0.0.5", 443, "10.0.0.0/8"),
    ("example.com", "", "10.0.0.5", 443, None),  # an empty host is no host
    # no IP known: IP entries cannot apply
    ("10.0.0.0/8", "internal.corp", None, 443, None),
    ("10.0.0.0/8,corp", "internal.corp", None, 443, "corp"),
    # internationalized names are compared in their ASCII (punycode) form
    ("bücher.example", "xn--bcher-kva.example", None, 443, "bücher.example"),
    ("xn--bcher-kva.example", "www.BÜCHER.example", None, 443, "xn--bcher-kva.example"),
    ("bücher.example", "buecher.example", None, 443, None),
    # underscores and hyphens occur in internal names
    ("_svc.my-corp.internal", "a._svc.my-corp.internal", None, 443, "_svc.my-corp.internal"),
]


def _vector_id(vector: Vector) -> str:
    value, host, ip, port, expected = vector
    return f"{value!r}|host={host!r}|ip={ip}|port={port}->{expected!r}"


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    return None if text is None else ipaddress.ip_address(text)


@pytest.mark.parametrize(("value", "host", "ip", "port", "expected"), MATCH_VECTORS, ids=map(_vector_id, MATCH_VECTORS))
def test_match_vector(
    value: str | Sequence[str], host: str | None, ip: str | None, port: int | None, expected: str | None
) -> None:
    no_proxy, errors = parse_no_proxy(value)
    # Guard against vacuous vectors: the value must parse cleanly to something that could match.
    assert errors == []
    assert no_proxy.entries or no_proxy.everything
    result = no_proxy.match(host, _ip(ip), port)
    if expected is None:
        assert result is None
    else:
        assert result is not None
        assert result.raw == expected


BAD_VECTORS: list[tuple[str, str]] = [
    ("10.0.0.0/33", "prefix length 33 out of range 0-32"),
    ("fd00::/129", "prefix length 129 out of range 0-128"),
    ("10.0.0.0/x", "prefix length 'x' is not a number"),
    ("10.0.0.0/", "prefix length '' is not a number"),
    ("10.0.0.0/255.0.0.0", "is not a number"),
    ("10.0.0.300/8", "'10.0.0.300' is not an IP address"),
    ("example.com/path", "'example.com' is not an IP address"),
    ("10.0.0.0/8:443", "a CIDR cannot have a port"),
    ("fd00::/8:443", "a CIDR cannot have a port"),
    ("[fd00::/8]", "a CIDR must not be bracketed"),
    ("[fd00::]/8", "unexpected '/8' after ']'"),
    ("example.com:99999", "port 99999 out of range (expected 1-65535)"),
    ("example.com:0", "port 0 out of range (expected 1-65535)"),
    ("example.com:http", "the port is not a number"),
    ("example.com:-1", "the port is not a number"),
    ("example.com:+80", "the port is not a number"),
    ("example.com:", "empty port"),
    ("192.0.2.1:70000", "port 70000 out of range (expected 1-65535)"),
    ("[::1]:abc", "the port is not a number"),
    ("[::1]:", "empty port"),
    ("[::1", "missing ']'"),
    ("[::1]8080", "unexpected '8080' after ']'"),
    ("[example.com]:80", "'example.com' is not an IP address"),
    ("2001:db8::1:99999x", "not a valid IPv6 address"),
    ("example.com:80:90", "not a valid IPv6 address"),
    ("fe80::1%eth0", "zone index"),
    (":8080", "missing host before the port ':8080'"),
    ("*:443", "'*' cannot have a port"),
    ("a..b", "empty label"),
    ("..example.com", "empty label"),
    ("*..example.com", "empty label"),
    ("example.com..", "empty label"),
    (".", "no domain name"),
    ("*.", "no domain name"),
    ("foo.*.com", "'*' is only allowed alone or as a leading '*.'"),
    ("*example.com", "'*' is only allowed alone or as a leading '*.'"),
    ("**.example.com", "'*' is only allowed alone or as a leading '*.'"),
    ("example.*", "'*' is only allowed alone or as a leading '*.'"),
    ("exa mple.com", "character ' ' is not allowed in a host name"),
    ("exa!mple.com", "character '!' is not allowed in a host name"),
    ("user@example.com", "'@' is not allowed (no credentials in NO_PROXY)"),
    ("http://example.com", "a URL is not allowed"),
    ("10.0.0.256", "not a valid IP address"),
    ("10.0.", "not a valid IP address"),
    ("10.0", "not a valid IP address"),
    ("a" * 64 + ".com", "longer than 63 characters"),
    (".".join(["abcdefghi"] * 26), "longer than 253 characters"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_VECTORS, ids=[raw[:40] for raw, _ in BAD_VECTORS])
def test_bad_entry_is_reported(raw: str, message: str) -> None:
    no_proxy, errors = parse_no_proxy(f"good.example, {raw} ,10.0.0.0/8")
    assert len(errors) == 1
    error = errors[0]
    assert error.index == 1
    assert error.raw == raw.strip()
    assert message in error.message
    # The valid entries around the bad one are kept, with their positions.
    assert [(entry.raw, entry.index) for entry in no_proxy.entries] == [
        ("good.example", 0),
        ("10.0.0.0/8", 2),
    ]
    assert not no_proxy.everything


def test_error_str_names_position_and_entry() -> None:
    _, errors = parse_no_proxy("ok.example,example.com:99999")
    assert errors == [RejectedNoProxyEntry(1, "example.com:99999", "port 99999 out of range (expected 1-65535)")]
    assert str(errors[0]) == "NO_PROXY entry 1 'example.com:99999': port 99999 out of range (expected 1-65535)"


def test_every_bad_entry_is_reported_in_order() -> None:
    no_proxy, errors = parse_no_proxy(["a..b, ok.example", "10.0.0.0/33", "*", "x:0"])
    assert [(error.index, error.raw) for error in errors] == [(0, "a..b"), (2, "10.0.0.0/33"), (4, "x:0")]
    assert [(entry.raw, entry.index) for entry in no_proxy.entries] == [("ok.example", 1)]
    assert no_proxy.everything


@pytest.mark.parametrize(
    ("raw", "domain"),
    [
        ("example.com", DomainPattern("example.com", apex=True, subdomains=True)),
        (".example.com", DomainPattern("example.com", apex=False, subdomains=True)),
        ("*.example.com", DomainPattern("example.com", apex=False, subdomains=True)),
        ("Example.COM.", DomainPattern("example.com", apex=True, subdomains=True)),
        ("*.Example.COM.:443", DomainPattern("example.com", apex=False, subdomains=True)),
        ("localhost", DomainPattern("localhost", apex=True, subdomains=True)),
        ("bücher.example", DomainPattern("xn--bcher-kva.example", apex=True, subdomains=True)),
    ],
)
def test_domain_entry_fields(raw: str, domain: DomainPattern) -> None:
    no_proxy, errors = parse_no_proxy(raw)
    assert errors == []
    assert no_proxy.entries == (
        NoProxyEntry(raw=raw, index=0, domain=domain, network=None, port=443 if raw.endswith(":443") else None),
    )


@pytest.mark.parametrize(
    ("raw", "network", "port"),
    [
        ("192.0.2.1", "192.0.2.1/32", None),
        ("192.0.2.1:8080", "192.0.2.1/32", 8080),
        ("2001:DB8::1", "2001:db8::1/128", None),
        ("[2001:db8::1]", "2001:db8::1/128", None),
        ("[2001:db8::1]:443", "2001:db8::1/128", 443),
        ("::ffff:192.0.2.1", "192.0.2.1/32", None),
        ("10.1.2.3/8", "10.0.0.0/8", None),
        ("fd00::/8", "fd00::/8", None),
        ("::ffff:0:0/96", "::ffff:0:0/96", None),
    ],
)
def test_network_entry_fields(raw: str, network: str, port: int | None) -> None:
    no_proxy, errors = parse_no_proxy(raw)
    assert errors == []
    assert no_proxy.entries == (
        NoProxyEntry(raw=raw, index=0, domain=None, network=ipaddress.ip_network(network), port=port),
    )


def test_domains_and_networks_split_entries_in_order() -> None:
    no_proxy, errors = parse_no_proxy("a.example, 10.0.0.0/8, *, .b.example:443, [::1]:80")
    assert errors == []
    assert no_proxy.everything
    assert [entry.raw for entry in no_proxy.domains] == ["a.example", ".b.example:443"]
    assert [entry.raw for entry in no_proxy.networks] == ["10.0.0.0/8", "[::1]:80"]
    assert [entry.index for entry in no_proxy.entries] == [0, 1, 3, 4]  # `*` counts for positions


def test_star_is_not_an_entry_and_matches_as_everything() -> None:
    no_proxy, errors = parse_no_proxy(" * ")
    assert errors == []
    assert no_proxy == NoProxy(entries=(), everything=True)
    assert no_proxy.match(None, None, None) is EVERYTHING
    assert EVERYTHING.raw == "*"
    assert EVERYTHING.domain is None
    assert EVERYTHING.network is None
    assert EVERYTHING.port is None


@pytest.mark.parametrize("value", ["", " ", ",,", " , ,", [], ["", " , "]])
def test_empty_value_sends_nothing_direct(value: str | Sequence[str]) -> None:
    no_proxy, errors = parse_no_proxy(value)
    assert errors == []
    assert no_proxy == NoProxy()
    assert no_proxy.match("example.com", ipaddress.ip_address("10.0.0.1"), 443) is None


def test_single_string_is_not_treated_as_a_sequence_of_characters() -> None:
    no_proxy, errors = parse_no_proxy("ab.example")
    assert errors == []
    assert [entry.raw for entry in no_proxy.entries] == ["ab.example"]
