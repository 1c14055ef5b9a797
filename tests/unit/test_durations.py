"""`serve --drain-window` / `--max-connection-age` durations: Go's grammar (what Kubernetes and Envoy users write),
parsed to seconds; anything else is a ValueError that quotes the text, never another exception."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress_xds.durations import PATTERN, format_duration, parse_duration
from egress_xds.policy.errors import ConfigError
from egress_xds.sources.file import load_policy_file

pytestmark = pytest.mark.fuzz

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("10h", 36_000.0),
        ("1h30m", 5_400.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("2m3s4ms", 123.004),
        (" 2m ", 120.0),
        ("0", 0.0),
        ("0s", 0.0),
    ],
)
def test_parses_what_envoy_and_kubernetes_users_write(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


REFUSED = ["", "5", "-1s", "+1s", "1d", "1 h", "ms", "1h-30m", "1e3s", "\u0661s", "1s ms", "1us"]


@pytest.mark.parametrize("text", [*REFUSED, "http://alice:Zq9Xw7Kv"])
def test_refuses_anything_else_without_quoting_it(text: str) -> None:
    """The caller quotes the value, shown safely: a URL with a password pasted here was quoted whole (the policy
    fuzz test found `healthCheck.interval: 'http://alice:Zq9Xw7Kv'` in a message)."""
    with pytest.raises(ValueError) as raised:
        parse_duration(text)
    assert str(raised.value) == "is not a duration: expected a number with a unit, like 500ms, 30s, 10h or 1h30m"


def test_a_policy_duration_error_quotes_the_value_with_its_password_redacted(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "proxies:\n  a:\n    url: http://example\n    healthCheck: {interval: 'http://alice:Zq9Xw7Kv'}\nhttpsProxy: a\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_policy_file(policy)
    message = str(raised.value)
    assert "proxies.a.healthCheck.interval: 'http://alice:<redacted>' is not a duration" in message
    assert "Zq9X" not in message


@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(UNITS))), min_size=1, max_size=4))
def test_a_sequence_of_parts_is_their_sum(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{number}{unit}" for number, unit in parts)
    assert parse_duration(text) == pytest.approx(sum(number * UNITS[unit] for number, unit in parts))


@given(st.integers(0, 596 * 3_600_000))
def test_format_duration_parses_back_to_the_same_milliseconds(milliseconds: int) -> None:
    assert round(parse_duration(format_duration(milliseconds / 1000)) * 1000) == milliseconds


@given(st.text(max_size=20))
def test_any_text_is_a_duration_or_a_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        assert str(error).startswith("is not a duration:")
    else:
        assert seconds >= 0


def test_the_crds_carry_the_same_grammar() -> None:
    """A duration the policy file accepts is one the API server admits in an EgressProxy, and the other way round."""
    import yaml

    from tests.support.egress import REPO_ROOT

    for crd in ("egressproxies.yaml", "clusteregressproxies.yaml"):
        text = (REPO_ROOT / "deploy" / "crds" / crd).read_text()
        health = yaml.safe_load(text)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
            "properties"
        ]["proxies"]["additionalProperties"]["properties"]["healthCheck"]["properties"]
        assert health["interval"]["pattern"] == PATTERN and health["timeout"]["pattern"] == PATTERN, crd


@given(st.text(alphabet="0123456789.mshx ", max_size=12))
def test_the_pattern_and_the_parser_agree(text: str) -> None:
    try:
        parse_duration(text)
        parsed = True
    except ValueError:
        parsed = False
    assert parsed == bool(re.fullmatch(PATTERN, text.strip()))
