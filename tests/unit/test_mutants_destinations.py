"""The destination grammar at its boundaries, with the exact messages users read (found by mutation testing,
scripts/mutation.sh destinations): label and name lengths, the port range and its digit limit, prefix lengths,
brackets, domain pattern forms, and which values an error may quote.
"""

from __future__ import annotations

import ipaddress

import pytest

from egress_xds.policy.destinations import (
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    BareName,
    DestinationError,
    DomainPattern,
    host_bits_note,
    is_ip_literal,
    normalize_host,
    parse_address_or_network,
    parse_domain_pattern,
    parse_host,
    parse_host_port,
    parse_hostname,
    parse_ip,
    parse_network,
    parse_port,
    split_host_port,
)


def error_of(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(DestinationError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return str(caught.value)


# --- host names ---------------------------------------------------------------------------------------------


def test_label_length_boundary() -> None:
    label = "a" * MAX_LABEL_LENGTH
    assert parse_hostname(f"{label}.example") == f"{label}.example"
    assert error_of(parse_hostname, f"{label}a.example") == "a label is longer than 63 characters"


def test_name_length_boundary() -> None:
    # 4 labels of 61 + dots: 247; padded to exactly 253 and then 254.
    name = ".".join(["b" * 61] * 4) + ".cdefg"
    assert len(name) == MAX_NAME_LENGTH
    assert parse_hostname(name) == name
    assert parse_hostname(name + ".") == name  # the root dot does not count
    assert error_of(parse_hostname, name + "h") == "the name is longer than 253 characters"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty host name"),
        (" . ", "empty host name"),
        ("a..b", "empty label (two dots in a row, or a leading dot after '*.' or '.')"),
        ("a.example..", "empty label (two dots in a row, or a leading dot after '*.' or '.')"),
        ("a b.example", "character ' ' is not allowed in a host name (allowed: letters, digits, '-', '_', '.')"),
        ("-a.example", "a label cannot start or end with '-'"),
        ("a-.example", "a label cannot start or end with '-'"),
        ("a.-b", "a label cannot start or end with '-'"),
        (
            "10.0.0.256",
            "not a valid IP address, and a name ending in a numeric label is not a domain "
            "(for a range write a CIDR such as 10.0.0.0/8)",
        ),
    ],
)
def test_host_name_errors(text: str, message: str) -> None:
    assert error_of(parse_hostname, text) == message


def test_host_name_normal_form() -> None:
    assert parse_hostname(" Api.Example.COM. ") == "api.example.com"
    assert parse_hostname("a-b_c.example") == "a-b_c.example"
    assert parse_hostname("example.1a") == "example.1a"  # only an all-digit last label is refused
    assert parse_hostname("bücher.example") == "xn--bcher-kva.example"


def test_parse_host_names_the_value_in_its_error() -> None:
    assert error_of(parse_host, "  ") == "empty host"
    assert error_of(parse_host, "Bad Host.") == (
        "'bad host' is not a valid host name or IP address: character ' ' is not allowed in a host name "
        "(allowed: letters, digits, '-', '_', '.')"
    )
    assert parse_host(" 2001:DB8::1 ") == "2001:db8::1"
    assert parse_host("::ffff:10.1.2.3") == "::ffff:a01:203"  # kept as written (not unmapped) for a host


def test_addresses() -> None:
    assert is_ip_literal("10.0.0.1") and is_ip_literal("::1")
    assert not is_ip_literal("example.com")
    assert parse_ip(" ::ffff:10.1.2.3 ") == ipaddress.IPv4Address("10.1.2.3")
    assert parse_ip("::ffff:10.1.2.3", unmap=False) == ipaddress.IPv6Address("::ffff:10.1.2.3")
    assert parse_ip("::1") == ipaddress.IPv6Address("::1")
    assert parse_ip("example.com") is None
    assert error_of(parse_ip, "fe80::1%eth0") == (
        "an IPv6 zone index ('%...') is not supported; write the address without it"
    )
    assert normalize_host(" Example.COM.. ") == "example.com"


# --- ports --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "port"), [("1", 1), ("65535", 65535), ("00080", 80), (1, 1), (65535, 65535)])
def test_ports_accepted(value: object, port: int) -> None:
    assert parse_port(value) == port


_NOT_A_NUMBER = "the port is not a number (expected 1-65535)"


@pytest.mark.parametrize(
    ("value", "quoted", "unquoted"),
    [
        ("0", "port 0 out of range (expected 1-65535)", "the port is out of range (expected 1-65535)"),
        ("65536", "port 65536 out of range (expected 1-65535)", "the port is out of range (expected 1-65535)"),
        (0, "port 0 out of range (expected 1-65535)", "the port is out of range (expected 1-65535)"),
        (-1, "port -1 out of range (expected 1-65535)", "the port is out of range (expected 1-65535)"),
        # More than 5 digits is out of range whatever the digits say (and never converted).
        ("000080", "port 000080 out of range (expected 1-65535)", "the port is out of range (expected 1-65535)"),
        ("", "empty port after ':' (expected 1-65535)", "empty port after ':' (expected 1-65535)"),
        ("S3cret", "port 'S3cret' is not a number (expected 1-65535)", "the port is not a number (expected 1-65535)"),
        (
            True,
            "expected a port number 1-65535, not the boolean true",
            "the port is not a number (expected 1-65535)",
        ),
        (443.5, "port 443.5 is not a whole number (expected 1-65535)", "the port is not a number (expected 1-65535)"),
        # Full-width digits (what str.isdigit() would take for a number).
        (
            "\uff18\uff10",
            "port '\uff18\uff10' is not a number (expected 1-65535)",
            "the port is not a number (expected 1-65535)",
        ),
    ],
)
def test_port_errors(value: object, quoted: str, unquoted: str) -> None:
    assert error_of(parse_port, value) == quoted
    assert error_of(parse_port, value, quote=False) == unquoted


def test_a_huge_integer_port_is_not_printed_whole() -> None:
    assert error_of(parse_port, 2**70) == "port a very large number out of range (expected 1-65535)"


# --- host:port ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "split"),
    [
        ("proxy:3128", ("proxy", "3128")),
        (" proxy ", ("proxy", None)),
        ("[::1]:3128", ("::1", "3128")),
        ("[::1]", ("::1", None)),
        ("[::1]:", ("::1", "")),
        ("::1", ("::1", None)),
        ("proxy:", ("proxy", "")),
    ],
)
def test_split_host_port(text: str, split: tuple[str, str | None]) -> None:
    assert split_host_port(text) == split


def test_split_host_port_errors() -> None:
    assert error_of(split_host_port, "[::1") == "'[::1': unclosed '[' in IPv6 address"
    assert error_of(split_host_port, "[::1]x") == "'[::1]x': expected ':port' after ']'"
    assert error_of(split_host_port, "[::1]]") == "'[::1]]': expected ':port' after ']'"  # the first ']' closes


def test_parse_host_port() -> None:
    assert parse_host_port("Proxy.Corp:3128") == ("proxy.corp", 3128)
    assert parse_host_port("proxy", default_port=80) == ("proxy", 80)
    assert parse_host_port("[2001:db8::1]", default_port=443) == ("2001:db8::1", 443)
    assert error_of(parse_host_port, "proxy") == "'proxy': expected host:port (the port is required)"
    assert error_of(parse_host_port, "alice:S3cret", quote_port=False) == "the port is not a number (expected 1-65535)"
    assert error_of(parse_host_port, "alice:S3cret") == "port 'S3cret' is not a number (expected 1-65535)"


# --- networks -----------------------------------------------------------------------------------------------


def test_prefix_length_boundaries() -> None:
    assert parse_network("10.1.2.3/32") == ipaddress.ip_network("10.1.2.3/32")
    assert parse_network("10.1.2.3/0") == ipaddress.ip_network("0.0.0.0/0")
    assert error_of(parse_network, "10.0.0.0/33") == "prefix length 33 out of range 0-32 for IPv4"
    assert parse_network("fd00::1/128") == ipaddress.ip_network("fd00::1/128")
    assert error_of(parse_network, "fd00::/129") == "prefix length 129 out of range 0-128 for IPv6"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.0", "'10.0.0.0' has no '/PREFIX' (expected a CIDR such as 10.0.0.0/8)"),
        ("10.0.0.0/8:80", "a CIDR cannot have a port (expected ADDRESS/PREFIX such as 10.0.0.0/8)"),
        (
            "ten/8",
            "'ten' is not an IP address (expected a CIDR ADDRESS/PREFIX such as 10.0.0.0/8 or fd00::/8)",
        ),
        ("10.0.0.0/x", "prefix length 'x' is not a number (expected e.g. 10.0.0.0/8)"),
        ("10.0.0.0/", "prefix length '' is not a number (expected e.g. 10.0.0.0/8)"),
        ("10.0.0.0/8/8", "prefix length '8/8' is not a number (expected e.g. 10.0.0.0/8)"),  # the first '/' splits
    ],
)
def test_network_errors(text: str, message: str) -> None:
    assert error_of(parse_network, text) == message


def test_host_bits_are_cleared_and_noted() -> None:
    network = parse_network(" 10.1.2.3/8 ")
    assert network == ipaddress.ip_network("10.0.0.0/8")
    assert host_bits_note(" 10.1.2.3/8 ", network) == (
        "10.1.2.3/8 has host bits set; read as 10.0.0.0/8 (as Go's net.ParseCIDR reads it)"
    )
    assert host_bits_note("10.0.0.0/8", parse_network("10.0.0.0/8")) is None
    assert host_bits_note("10.0.0.1", parse_address_or_network("10.0.0.1")) is None


def test_address_or_network() -> None:
    assert parse_address_or_network("10.0.0.1") == ipaddress.ip_network("10.0.0.1/32")
    assert parse_address_or_network("::1") == ipaddress.ip_network("::1/128")
    assert parse_address_or_network("10.0.0.0/8") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_address_or_network("::ffff:10.0.0.1") == ipaddress.ip_network("::ffff:10.0.0.1/128")
    assert error_of(parse_address_or_network, "example.com") == (
        "'example.com' is not an IP address or a CIDR (expected e.g. 10.0.0.0/8)"
    )


# --- domain patterns ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bare", "pattern", "shown"),
    [
        ("Example.COM", BareName.EXACTLY, DomainPattern("example.com", apex=True, subdomains=False), "example.com"),
        (
            "example.com",
            BareName.AND_SUBDOMAINS,
            DomainPattern("example.com", apex=True, subdomains=True),
            "example.com (and subdomains)",
        ),
        ("*.example.com", BareName.EXACTLY, DomainPattern("example.com", apex=False, subdomains=True), "*.example.com"),
        (".example.com", BareName.AND_SUBDOMAINS, DomainPattern("example.com", False, True), "*.example.com"),
        (" .Example.com. ", BareName.EXACTLY, DomainPattern("example.com", False, True), "*.example.com"),
    ],
)
def test_domain_pattern_forms(text: str, bare: BareName, pattern: DomainPattern, shown: str) -> None:
    parsed = parse_domain_pattern(text, bare)
    assert parsed == pattern
    assert str(parsed) == shown


def test_domain_pattern_matching() -> None:
    exact = DomainPattern.exact("Example.com.")
    assert exact.matches("EXAMPLE.com.") and not exact.matches("a.example.com")
    subdomains = DomainPattern.subdomains_of("example.com")
    assert subdomains.matches("a.b.Example.com") and not subdomains.matches("example.com")
    assert not subdomains.matches("badexample.com")
    both = DomainPattern.domain_and_subdomains("example.com")
    assert both.matches("example.com") and both.matches("a.example.com") and not both.matches("xexample.com")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.*.example", "'*' is only allowed alone or as a leading '*.' (e.g. *.example.com)"),
        ("**.example", "'*' is only allowed alone or as a leading '*.' (e.g. *.example.com)"),
        ("*.", "no domain name after the leading '.' or '*.'"),
        (".", "no domain name after the leading '.' or '*.'"),
        ("..", "no domain name after the leading '.' or '*.'"),
        (" 10.0.0.1 ", "'10.0.0.1' is an IP address, not a domain"),
        ("*.10.0.0.1", "'*.10.0.0.1' is an IP address, not a domain"),
        ("..example", "empty label (two dots in a row, or a leading dot after '*.' or '.')"),
    ],
)
def test_domain_pattern_errors(text: str, message: str) -> None:
    assert error_of(parse_domain_pattern, text, BareName.EXACTLY) == message
