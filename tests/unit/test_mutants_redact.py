"""Redaction boundaries that mutation testing (scripts/mutation.sh redact) showed no other test pins down.

Each case is a rule of `egress_xds.redact`: which part of a value may be quoted in an error, where a URL cut short
is cut, when a long value is elided, and which header values `render` / CSDS dumps replace.
"""

from __future__ import annotations

import pytest

from egress_xds.redact import (
    REDACTED,
    SHOWN_VALUE_CHARS,
    contains_redactions,
    redact_config,
    redact_value,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # The last `@` ends the userinfo: a password holding `@` is redacted whole.
        ("http://alice:pa@ss@proxy:3128", f"http://{REDACTED}@proxy:3128"),
        # A URL cut short before its `@`: everything after the host's ':' may be the password.
        ("http://alice:S3cret", f"http://alice:{REDACTED}"),
        ("http://alice:S3cret:3128", f"http://alice:{REDACTED}"),  # the first ':' counts, not the last
        ("http://alice:pa:ss", f"http://alice:{REDACTED}"),
        ("http://alice:pa]ss", f"http://alice:{REDACTED}"),  # a ']' outside brackets is no IPv6 host end
        ("http://:S3cret", f"http://:{REDACTED}"),  # an empty user name still keeps its ':'
        ("http://[::1]:S3cret", f"http://[::1]:{REDACTED}"),  # the colons inside brackets are the host's
        ("http://[::1]:pa]ss", f"http://[::1]:{REDACTED}"),  # the first ']' closes the IPv6 host
        # A complete host:port is not cut, with or without a path holding ':'.
        ("http://[::1]:3128", "http://[::1]:3128"),
        ("http://[::]:3128", "http://[::]:3128"),
        ("http://proxy:3128/a:b", "http://proxy:3128/a:b"),
        ("http://proxy:3128?q=a:b", "http://proxy:3128?q=a:b"),
        ("http://proxy", "http://proxy"),
    ],
)
def test_redact_value_boundaries(value: str, expected: str) -> None:
    assert redact_value(value) == expected


def test_a_value_not_meant_as_url_is_quoted_as_it_is() -> None:
    # `url` is off by default: `host:name` in a field that is no URL is not taken for a URL cut short.
    assert redact_value("alice:S3cret") == "alice:S3cret"
    assert redact_value("alice:S3cret", url=True) == f"alice:{REDACTED}"


def test_long_values_are_elided_after_the_shown_length() -> None:
    exact = "a" * SHOWN_VALUE_CHARS
    assert redact_value(exact) == exact
    longer = "b" * (SHOWN_VALUE_CHARS + 1)
    assert redact_value(longer) == f"{'b' * SHOWN_VALUE_CHARS}... ({SHOWN_VALUE_CHARS + 1} characters)"


def test_elision_counts_the_original_value() -> None:
    value = "http://alice:" + "p" * 200 + "@proxy:3128"
    # Redacted first, then short enough to be shown whole.
    assert redact_value(value) == f"http://{REDACTED}@proxy:3128"
    long_host = "http://u:p@" + "h" * 200
    kept = "h" * (SHOWN_VALUE_CHARS - len(f"http://{REDACTED}@"))
    assert redact_value(long_host) == f"http://{REDACTED}@{kept}... (211 characters)"


def test_redact_config_replaces_secret_header_values_at_any_depth() -> None:
    data = {
        "listeners": [
            {"headers": [{"key": "Proxy-Authorization", "value": "Basic czNjcmV0"}, {"key": "Host", "value": "x"}]},
            {"key": "AUTHORIZATION", "value": "Bearer t0ken", "append": True},
        ],
        "other": {"key": "authorization"},  # no value: nothing to replace, nothing added
        "n": 3,
    }
    assert redact_config(data) == {
        "listeners": [
            {"headers": [{"key": "Proxy-Authorization", "value": REDACTED}, {"key": "Host", "value": "x"}]},
            {"key": "AUTHORIZATION", "value": REDACTED, "append": True},
        ],
        "other": {"key": "authorization"},
        "n": 3,
    }
    # A copy: the input is untouched.
    assert data["listeners"][0]["headers"][0]["value"] == "Basic czNjcmV0"  # type: ignore[index]


def test_redact_config_leaves_other_keys_and_scalars() -> None:
    assert redact_config({"key": "x-authorization", "value": "v"}) == {"key": "x-authorization", "value": "v"}
    assert redact_config({"value": "v"}) == {"value": "v"}
    assert redact_config("Bearer t0ken") == "Bearer t0ken"
    assert redact_config([1, None]) == [1, None]


def test_contains_redactions() -> None:
    assert contains_redactions({"a": [{"b": REDACTED}]})
    assert contains_redactions([0, [REDACTED]])
    assert contains_redactions(REDACTED)
    assert not contains_redactions({"a": [{"b": "x"}], REDACTED: "key names do not count"})
    assert not contains_redactions([])
    assert not contains_redactions("x")
