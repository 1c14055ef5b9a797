"""The policy parser's sampled functions at their boundaries, with the exact `file:line: field: message` users
read (found by mutation testing, `scripts/mutation.sh 'parse:_duration_ms,...'`, see docs/mutation-testing.md):
health-check durations and thresholds, credentials files, rule actions, listen addresses.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from egress_xds.durations import EXAMPLES as LIKE
from egress_xds.policy import ConfigError, ViaProxy
from egress_xds.policy.model import EgressPolicy, HealthCheck
from egress_xds.sources.file import load_policy_file

UNIT = f"a unit, like {LIKE}"


def load(tmp_path: Path, text: str) -> EgressPolicy:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    (policy,) = load_policy_file(path).policies
    return policy


def errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_policy_file(path)
    return [str(issue).replace(str(tmp_path), "DIR") for issue in caught.value.issues]


def health_check_policy(fields: str) -> str:
    return f"proxies:\n  p:\n    url: http://10.0.0.1:3128\n    healthCheck: {{{fields}}}\nhttpsProxy: p\n"


# --- health checks: durations and thresholds ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("", HealthCheck(5000, 1000, 2, 1)),
        ("interval: 250ms", HealthCheck(250, 1000, 2, 1)),
        ("interval: 1.5s, timeout: ' 2s '", HealthCheck(1500, 2000, 2, 1)),
        ("interval: 1m", HealthCheck(60_000, 1000, 2, 1)),
        ("interval: 60m", HealthCheck(3_600_000, 1000, 2, 1)),  # exactly the 1h limit
        ("timeout: 1ms", HealthCheck(5000, 1, 2, 1)),
        ("unhealthyThreshold: 1, healthyThreshold: 4294967295", HealthCheck(5000, 1000, 1, 4_294_967_295)),
        ("healthyThreshold: 3", HealthCheck(5000, 1000, 2, 3)),
        ("interval: 1m30s, timeout: 1h", HealthCheck(90_000, 3_600_000, 2, 1)),
    ],
)
def test_health_check_values(tmp_path: Path, fields: str, expected: HealthCheck) -> None:
    assert load(tmp_path, health_check_policy(fields)).proxies["p"].health_check == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("interval: 3600001ms", "proxies.p.healthCheck.interval: a duration must be at most 1h"),
        ("interval: 61m", "proxies.p.healthCheck.interval: a duration must be at most 1h"),
        ("timeout: 0s", "proxies.p.healthCheck.timeout: a duration must be positive"),
        (
            "timeout: 0.5ms",
            "proxies.p.healthCheck.timeout: '0.5ms' is below the 1ms resolution: a duration must be at least 1ms",
        ),
        (
            "interval: 0.999ms",
            "proxies.p.healthCheck.interval: '0.999ms' is below the 1ms resolution: a duration must be at least 1ms",
        ),
        ("interval: 5", f"proxies.p.healthCheck.interval: expected a duration like {LIKE}, got the number 5"),
        ("interval: 2h", "proxies.p.healthCheck.interval: a duration must be at most 1h"),
        ("interval: x5s", f"proxies.p.healthCheck.interval: 'x5s' is not a duration: expected a number with {UNIT}"),
        ("interval: 5sx", f"proxies.p.healthCheck.interval: '5sx' is not a duration: expected a number with {UNIT}"),
        (
            "unhealthyThreshold: 0",
            "proxies.p.healthCheck.unhealthyThreshold: expected a whole number 1-4294967295, got the number 0",
        ),
        (
            "healthyThreshold: 4294967296",
            "proxies.p.healthCheck.healthyThreshold: expected a whole number 1-4294967295, got the number 4294967296",
        ),
        (
            "healthyThreshold: true",
            "proxies.p.healthCheck.healthyThreshold: expected a whole number 1-4294967295, got the boolean true",
        ),
        (
            "unhealthyThreshold: '2'",
            "proxies.p.healthCheck.unhealthyThreshold: expected a whole number 1-4294967295, got '2'",
        ),
    ],
)
def test_health_check_errors(tmp_path: Path, fields: str, message: str) -> None:
    assert errors(tmp_path, health_check_policy(fields)) == [f"DIR/p.yaml:4: {message}"]


# --- credentials files --------------------------------------------------------------------------------------


def credentials_policy(url: str = "http://10.0.0.1:3128") -> str:
    return f"proxies:\n  p:\n    url: {url}\n    credentialsFile: cred\nhttpsProxy: p\n"


@pytest.mark.parametrize(
    ("content", "header", "username"),
    [
        ("alice:S3cret\n", "Basic " + base64.b64encode(b"alice:S3cret").decode(), "alice"),
        ("  alice:pa:ss  \n\n", "Basic " + base64.b64encode(b"alice:pa:ss").decode(), "alice"),
        ("alice:pa ss\n", "Basic " + base64.b64encode(b"alice:pa ss").decode(), "alice"),  # no scheme word
        (":S3cret\n", "Basic " + base64.b64encode(b":S3cret").decode(), ""),
        ("Bearer abc.def\n", "Bearer abc.def", ""),
        ("Negotiate a b\n", "Negotiate a b", ""),
    ],
)
def test_credentials_file_forms(tmp_path: Path, content: str, header: str, username: str) -> None:
    (tmp_path / "cred").write_text(content)
    credentials = load(tmp_path, credentials_policy()).proxies["p"].credentials
    assert credentials is not None
    assert (credentials.header_value, credentials.username) == (header, username)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "DIR/cred: expected one line 'user:password' or a Proxy-Authorization value"),
        ("  \n", "DIR/cred: expected one line 'user:password' or a Proxy-Authorization value"),
        ("alice:a\nbob:b\n", "DIR/cred: expected one line 'user:password' or a Proxy-Authorization value"),
        ("S3cretOnly\n", "DIR/cred: expected 'user:password' (no ':' found)"),
    ],
)
def test_credentials_file_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "cred").write_text(content)
    assert errors(tmp_path, credentials_policy()) == [f"DIR/p.yaml:4: proxies.p.credentialsFile: {message}"]


def test_a_missing_credentials_file(tmp_path: Path) -> None:
    assert errors(tmp_path, credentials_policy()) == [
        "DIR/p.yaml:4: proxies.p.credentialsFile: cannot read DIR/cred: No such file or directory"
    ]


def test_credentials_in_the_url_and_a_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "cred").write_text("bob:other\n")
    assert errors(tmp_path, credentials_policy("http://alice:S3cret@10.0.0.1:3128")) == [
        "DIR/p.yaml:4: proxies.p.credentialsFile: credentials are given both in the URL and in credentialsFile; "
        "keep one"
    ]


def test_credentials_file_must_be_a_string(tmp_path: Path) -> None:
    text = "proxies:\n  p: {url: 'http://10.0.0.1:3128', credentialsFile: [a]}\nhttpsProxy: p\n"
    (message,) = errors(tmp_path, text)
    assert message.startswith("DIR/p.yaml:2: proxies.p.credentialsFile: expected ")


# --- rule actions -------------------------------------------------------------------------------------------


def rules_policy(action: str) -> str:
    return (
        "proxies:\n  corp: http://10.0.0.1:3128\n  other: http://10.0.0.2:3128\nhttpsProxy: corp\n"
        f"rules:\n  - {{name: r, domains: [a.example], action: {action}}}\n"
    )


def test_an_action_names_its_proxy(tmp_path: Path) -> None:
    (rule,) = load(tmp_path, rules_policy("{proxy: other}")).rules
    assert isinstance(rule.action, ViaProxy) and rule.action.proxy.name == "other"


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("{proxy: nowhere}", "DIR/p.yaml:6: rules[0].action.proxy: unknown proxy 'nowhere' (defined: corp, other)"),
        ("{proxy: 7}", "DIR/p.yaml:6: rules[0].action.proxy: expected a proxy name, got the number 7"),
        ("{}", "DIR/p.yaml:6: rules[0].action: expected {proxy: NAME}"),
        ("{proxy: other, via: x}", "DIR/p.yaml:6: rules[0].action.via: unknown key 'via' (expected one of proxy)"),
        ("Direct", "DIR/p.yaml:6: rules[0].action: expected direct, deny or {proxy: NAME}, got 'Direct'"),
    ],
)
def test_action_errors(tmp_path: Path, action: str, message: str) -> None:
    assert errors(tmp_path, rules_policy(action)) == [message]


def test_with_no_proxy_defined_the_error_says_so(tmp_path: Path) -> None:
    text = "rules:\n  - {name: r, domains: [a.example], action: {proxy: corp}}\n"
    assert errors(tmp_path, text) == [
        "DIR/p.yaml:2: rules[0].action.proxy: unknown proxy 'corp' (defined: none defined)"
    ]
