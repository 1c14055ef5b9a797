"""Flag values at their bounds, as properties: every value in range is taken as written, every other one is a usage
error that names the flag (`serve --debounce-ms`, `capture`'s ports and uid, the node `mode`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress_xds import capture
from egress_xds.cli import MAX_DEBOUNCE_MS, _parser
from egress_xds.policy.node import Node, NodeMode

SERVE = ["serve", "--config", "policy.yaml"]


@given(value=st.integers(min_value=-(10**12), max_value=10**12))
def test_debounce_takes_zero_to_a_minute_and_names_the_flag_otherwise(
    value: int, capsys: pytest.CaptureFixture[str]
) -> None:
    if 0 <= value <= MAX_DEBOUNCE_MS:
        assert _parser().parse_args([*SERVE, "--debounce-ms", str(value)]).debounce_ms == value
        return
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args([*SERVE, "--debounce-ms", str(value)])
    assert exited.value.code == 2
    assert f"argument --debounce-ms: '{value}': expected 0 to {MAX_DEBOUNCE_MS} milliseconds" in capsys.readouterr().err


@given(
    st.sampled_from(["port", "exclude_port", "envoy_uid"]),
    st.integers(min_value=-(2**40), max_value=2**40),
)
def test_capture_settings_out_of_range_name_their_flag(name: str, value: int) -> None:
    lowest, highest = (1, capture.MAX_UID) if name == "envoy_uid" else (1, 65535)
    fields = {"exclude_ports": (value,)} if name == "exclude_port" else {name: value}
    if lowest <= value <= highest:
        capture.CaptureSettings(**fields)  # type: ignore[arg-type]
        return
    with pytest.raises(capture.InvalidCaptureSettings) as caught:
        capture.CaptureSettings(**fields)  # type: ignore[arg-type]
    flag = f"--{name.replace('_', '-')} {value}"
    if name == "envoy_uid":
        assert str(caught.value).startswith(f"{flag}: expected 1-{highest} (uid 0 would exempt every root process")
    else:
        assert str(caught.value) == f"{flag}: out of range (expected {lowest}-{highest})"


@given(st.text(max_size=20))
def test_only_the_exact_mode_names_are_modes(value: str) -> None:
    node = Node("n", {"mode": value})
    if value in {mode.value for mode in NodeMode}:
        assert node.mode_error is None and node.mode is NodeMode(value)
    else:
        assert node.mode_error == f"unknown mode {value!r}: expected 'sidecar' or 'standalone' (exact, lowercase)"
