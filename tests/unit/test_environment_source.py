"""The environment source: bad NO_PROXY entries are ignored with a warning (as Go does); a bad proxy URL is fatal."""

from __future__ import annotations

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
        ({"HTTPS_PROXY": "proxy.corp"}, "environment: HTTPS_PROXY: 'proxy.corp' has no scheme: write http://"),
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
