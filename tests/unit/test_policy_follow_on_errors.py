"""A failed proxy is reported once, where it failed: what depends on it (a forward proxy that needs a default
proxy) says nothing more, but it still speaks when no proxy was given at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_policy_parse import errors_of, write


@pytest.mark.parametrize("defaults", ["httpProxy: corp\nhttpsProxy: corp\n", "httpsProxy: corp\n", "httpProxy: corp\n"])
def test_a_proxy_that_failed_to_parse_is_reported_once_not_again_by_the_forward_proxy(
    tmp_path: Path, defaults: str
) -> None:
    text = (
        "proxies: {corp: {url: 'http://alice:pw@127.0.0.1:99999'}}\n"
        + defaults
        + "standalone: {forwardProxy: {listen: '127.0.0.1:3128'}}\n"
    )
    errors = errors_of(write(tmp_path, text))
    assert len(errors) == 1, errors
    assert "proxies.corp.url: port 99999 out of range" in errors[0]
    assert "pw" not in errors[0]


def test_a_forward_proxy_without_any_proxy_is_still_an_error(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, "rules: []\nstandalone: {forwardProxy: {listen: '127.0.0.1:3128'}}\n"))
    assert [error.split(": ", 1)[1] for error in errors] == [
        "standalone.forwardProxy: a forward proxy needs httpProxy or httpsProxy to be set"
    ]
