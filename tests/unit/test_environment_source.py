"""The environment source: bad NO_PROXY entries are ignored with a warning, a proxy value without a scheme is read
as http:// with a warning (both as Go does); a bad proxy URL is fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.sources.environment import EnvironmentPolicy, load_environment_policy, policy_from_environment

CORPORATE_NO_PROXY = "localhost,127.0.0.1,<local>,.corp.example,10.*,10.0.0.0/8"


def test_bad_no_proxy_entries_are_ignored_with_one_warning_each() -> None:
    loaded = load_environment_policy({"HTTPS_PROXY": "http://10.0.0.1:3128", "no_proxy": CORPORATE_NO_PROXY})
    assert isinstance(loaded, EnvironmentPolicy)
    (policy,) = loaded.policies.policies
    assert [entry.raw for entry in policy.no_proxy.entries] == ["localhost", "127.0.0.1", ".corp.example", "10.0.0.0/8"]
    assert [(issue.source, issue.line, issue.path) for issue in loaded.warnings] == [
        ("environment", None, "no_proxy"),
        ("environment", None, "no_proxy"),
    ]
    assert loaded.warnings[0].message.startswith("entry 2 '<local>' ignored: character '<' is not allowed")
    assert loaded.warnings[1].message.startswith("entry 4 '10.*' ignored: '*' is only allowed alone")
    assert str(loaded.warnings[0]).startswith("environment: no_proxy: entry 2 '<local>' ignored:")


def test_a_valid_environment_has_no_warnings() -> None:
    loaded = load_environment_policy({"HTTP_PROXY": "http://10.0.0.1:3128", "NO_PROXY": ".svc"})
    assert loaded.warnings == ()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "environment: neither HTTP_PROXY nor HTTPS_PROXY (nor lower case) is set"),
        ({"NO_PROXY": "a.test"}, "environment: neither HTTP_PROXY nor HTTPS_PROXY (nor lower case) is set"),
        ({"HTTPS_PROXY": "ftp://10.0.0.1"}, "environment: HTTPS_PROXY: unsupported scheme 'ftp'"),
        ({"HTTPS_PROXY": "proxy.corp:99999"}, "environment: HTTPS_PROXY: port 99999 out of range"),
        ({"HTTP_PROXY": "proxy.corp/path"}, "environment: HTTP_PROXY: a proxy URL has no path"),
        (
            {"http_proxy": "http://10.0.0.1:99999"},
            "environment: http_proxy: port 99999 out of range (expected 1-65535)",
        ),
    ],
)
def test_fatal_problems_raise(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_environment_policy(environ)
    assert str(caught.value).startswith(expected), str(caught.value)


def test_the_old_entry_point_still_works_and_applies_the_valid_entries() -> None:
    policies = policy_from_environment({"HTTPS_PROXY": "http://10.0.0.1:3128", "NO_PROXY": "a.test,<local>"})
    assert [entry.raw for entry in policies.policies[0].no_proxy.entries] == ["a.test"]


def test_warnings_are_config_issues() -> None:
    loaded = load_environment_policy({"HTTPS_PROXY": "http://10.0.0.1:3128", "NO_PROXY": "a..b"})
    assert loaded.warnings == (
        ConfigIssue(
            "environment",
            None,
            "NO_PROXY",
            "entry 0 'a..b' ignored: empty label (two dots in a row, or a leading dot after '*.' or '.')",
        ),
    )


@pytest.mark.parametrize(
    ("value", "shown", "host", "port"),
    [
        ("proxy.corp:3128", "http://proxy.corp:3128", "proxy.corp", 3128),
        ("10.0.0.1", "http://10.0.0.1:80", "10.0.0.1", 80),
        ("[2001:db8::1]:3128", "http://[2001:db8::1]:3128", "2001:db8::1", 3128),
        ("alice:pw@proxy.corp:3128", "http://proxy.corp:3128", "proxy.corp", 3128),
    ],
)
def test_a_proxy_without_a_scheme_is_read_as_http_as_go_does(value: str, shown: str, host: str, port: int) -> None:
    loaded = load_environment_policy({"https_proxy": value, "NO_PROXY": ".svc"})
    (policy,) = loaded.policies.policies
    proxy = policy.https_proxy
    assert (proxy.scheme.value, proxy.endpoints[0].host, proxy.endpoints[0].port) == ("http", host, port)
    assert [str(warning) for warning in loaded.warnings] == [
        f"environment: https_proxy: no scheme: read as {shown}, as Go's httpproxy does "
        "(write http:// or https:// to say which)"
    ]


def test_credentials_of_a_value_without_a_scheme_are_used_and_never_shown() -> None:
    loaded = load_environment_policy({"HTTP_PROXY": "alice:pw@proxy.corp:3128", "HTTPS_PROXY": "http://10.0.0.1:1"})
    (policy,) = loaded.policies.policies
    credentials = policy.http_proxy.credentials
    assert credentials is not None and credentials.username == "alice"
    assert [warning.path for warning in loaded.warnings] == ["HTTP_PROXY"]
    assert "alice" not in str(loaded.warnings) and "pw" not in str(loaded.warnings)


def _check_from_env(environ: dict[str, str], *output: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key.lower() not in ("http_proxy", "https_proxy",
                                                                                      "no_proxy")}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "egress_xds.cli", "check", "--from-env", *output],
        env=clean | environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_from_env_prints_the_warning_and_accepts_the_value() -> None:
    environ = {"HTTPS_PROXY": "alice:S3cretPw@proxy.corp:3128"}
    text = _check_from_env(environ)
    assert text.returncode == 0, text.stderr
    assert "environment: HTTPS_PROXY: no scheme: read as http://proxy.corp:3128" in text.stderr
    as_json = _check_from_env(environ, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["ok"] is True and report["errors"] == []
    assert [warning["field"] for warning in report["warnings"]] == ["HTTPS_PROXY"], report["warnings"]
    assert "alice" not in text.stderr and "alice" not in json.dumps(report["warnings"])
    for output in (text.stdout, text.stderr, as_json.stdout, as_json.stderr):  # the summary names the user only
        assert "S3cretPw" not in output, output


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice:S3cretPw@proxy:99999", "port 99999 out of range (expected 1-65535)"),
        ("alice:S3cretPw@proxy/x", "a proxy URL has no path, query or fragment"),
        ("alice:S3cretPw@", "the proxy URL has no host"),
        ("alice:S3cretPw", "the port is not a number (expected 1-65535)"),  # http://alice:S3cretPw, as Go reads it
        ("alice:S3cretPw@[::1:3128", "'http://<redacted>@[::1:3128' is not a valid URL"),
    ],
)
def test_a_bad_value_without_a_scheme_is_fatal_and_never_quotes_the_password(value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_environment_policy({"HTTPS_PROXY": value})
    assert str(caught.value).startswith(f"environment: HTTPS_PROXY: {expected}"), str(caught.value)
    assert "S3cret" not in str(caught.value) and "alice" not in str(caught.value)
