"""`serve --drain-window` / `--max-connection-age` durations: Go's grammar (what Kubernetes and Envoy users write),
parsed to seconds; anything else is a ValueError that quotes the text, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress_xds.durations import format_duration, parse_duration

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


@pytest.mark.parametrize("text", REFUSED)
def test_refuses_anything_else_quoting_it(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(text)
    assert repr(text) in str(raised.value) and "like 500ms, 30s, 10h" in str(raised.value)


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
        assert repr(text) in str(error)
    else:
        assert seconds >= 0
