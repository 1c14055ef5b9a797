"""No error text and no scrubbed log line carries a credential, even one egress-xds was never told about.

The rule does not depend on knowing the secret: the userinfo of anything URL-shaped (`http://u:p@h`,
`u:p@h:3128`, `user@host`) is replaced, and a URL that breaks off before its `@` is never quoted past its host.
"""

from __future__ import annotations

import base64
import json
import string
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from egress_xds.policy.errors import ConfigError
from egress_xds.redact import REDACTED, redact_value
from egress_xds.scrub import SecretScrubber
from egress_xds.sources.environment import load_environment_policy
from egress_xds.sources.file import load_policy_file
from egress_xds.sources.kubernetes.api import Kind, ResourceRef
from egress_xds.sources.kubernetes.convert import policy_from_resource

PASSWORD = "S3cretPw"


def file_errors(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_policy_file(path)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"httpsProxy: alice:{PASSWORD}@proxy:3128\n",
            "policy.yaml:1: httpsProxy: '<redacted>@proxy:3128' has no scheme: write http:// or https:// before it",
        ),
        (f"httpsProxy: http://alice:{PASSWORD}\n", "policy.yaml:1: httpsProxy: the port is not a number"),
        (f"httpsProxy: http://alice:{PASSWORD}@\n", "policy.yaml:1: httpsProxy: the proxy URL has no host"),
        (f"proxies: {{p: 'alice:{PASSWORD}@proxy:3128'}}\nhttpProxy: p\n", "proxies.p.url: '<redacted>@proxy:3128'"),
        (
            f"httpProxy: http://p:3128\nnoProxy: 'a.test,alice:{PASSWORD}@host,b.test'\n",
            "noProxy: entry 1 '<redacted>@host': '@' is not allowed",
        ),
        (
            f"httpProxy: http://p:3128\nnoProxy: 'a.test,http://alice:{PASSWORD[:4]}x,{PASSWORD[4:]}@proxy,b.test'\n",
            "noProxy: entry 1 '<redacted>': not a valid entry, and it stands before an '@'",
        ),
        (
            f"httpProxy: http://p:3128\nnoProxy: [http://alice:{PASSWORD}]\n",
            "noProxy[0]: entry 0 'http://alice:<redacted>'",
        ),
        (
            f"httpProxy: http://p:3128\nrules: [{{action: {{proxy: 'u:{PASSWORD}@p'}}}}]\n",
            "unknown proxy '<redacted>@p'",
        ),
        (
            f"httpProxy: http://p:3128\nstandalone: {{listeners: [{{name: a, listen: 'u:{PASSWORD}@127.0.0.1:1', "
            "target: 'x:1'}]}\n",
            "listen",
        ),
        (f"httpProxy: http://p:3128\nu:{PASSWORD}@p: 1\n", "unknown key '<redacted>@p'"),
    ],
)
def test_file_errors_never_quote_a_password(tmp_path: Path, text: str, expected: str) -> None:
    errors = file_errors(tmp_path, text)
    assert PASSWORD not in errors and PASSWORD[:4] not in errors
    assert expected in errors, errors


def test_environment_errors_never_quote_a_password() -> None:
    with pytest.raises(ConfigError) as caught:
        load_environment_policy({"HTTPS_PROXY": f"alice:{PASSWORD}@proxy:99999"})
    assert str(caught.value) == "environment: HTTPS_PROXY: port 99999 out of range (expected 1-65535)"


def test_kubernetes_errors_never_quote_a_password() -> None:
    resource = {"spec": {"httpsProxy": f"alice:{PASSWORD}@proxy:3128"}}
    with pytest.raises(ConfigError) as caught:
        policy_from_resource(ResourceRef(Kind.EGRESS_PROXY, "ns", "p"), resource, {})
    assert [f"{issue.path}: {issue.message}" for issue in caught.value.issues] == [
        "spec.httpsProxy: credentials in the URL are not allowed here (anyone who can read the resource would see "
        "them); put them in a Secret and use credentialsSecretRef",
        "spec.httpsProxy: 'proxy:3128' has no scheme: write http:// or https:// before it",
    ]


# --- the scrubber's safety net, for passwords it was never told about ---------------------------------------

# Free text has no field boundaries: a URL ends at whitespace, so a password here has none (a URL cannot hold it).
_PASSWORD_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
passwords = st.text(_PASSWORD_CHARS, min_size=4, max_size=24)
users = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=10)
hosts = st.sampled_from(["proxy", "proxy.corp.example", "10.0.0.1", "[fd00::1]"])
ports = st.sampled_from(["", ":3128", ":443"])
SHAPES = (
    "http://{user}:{password}@{host}{port}",
    "https://{user}:{password}@{host}{port}/",
    "{user}:{password}@{host}{port}",
    "socks5h://{user}:{password}@{host}{port}",
    "{password}@{host}{port}",
)


def leaked(password: str, text: str, original: str) -> str | None:
    """A 4+ character piece of the password in `text` that was not already in the text around the URL."""
    for size in range(4, len(password) + 1):
        for start in range(len(password) - size + 1):
            piece = password[start : start + size]
            if piece in text and piece not in original:
                return piece
    return None


@pytest.mark.fuzz
@given(
    user=users,
    password=passwords,
    host=hosts,
    port=ports,
    shape=st.sampled_from(SHAPES),
    before=st.sampled_from(["", "NACK: ", "error '", 'value: "', "url=", "(", "Proxy-Authorization "]),
    after=st.sampled_from(["", "'", '" rejected', ") and more", ", next"]),
)
def test_scrubber_removes_any_url_password(
    user: str, password: str, host: str, port: str, shape: str, before: str, after: str
) -> None:
    assume(not password.endswith("@"))  # `pw@` + `@host`: the password's own @ is the one before the host
    assume(password not in REDACTED)  # `<red` is in the marker that replaces it, not a leak
    url = shape.format(user=user, password=password, host=host, port=port)
    text = f"{before}{url}{after}"
    scrubbed = SecretScrubber().scrub(text)
    frame = before + after + shape  # a piece of the frame or the scheme (password "http") is not a leak
    assert leaked(password, scrubbed, frame) is None, scrubbed
    assert f"{REDACTED}@" in scrubbed
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert token not in SecretScrubber().scrub(f"Proxy-Authorization: Basic {token}")


@pytest.mark.parametrize(
    "text",
    [
        "cannot bind '192.0.2.1:8080'",
        "listener egress-listener-github: 127.0.0.1:10443 -> api.github.com:443",
        "NACK for type.googleapis.com/envoy.config.cluster.v3.Cluster version 3: Proto constraint validation failed",
        "reload of /etc/egress/policy.yaml: 2 problems (policy.yaml:3: httpsProxy: port 99999 out of range)",
        "[fd00::1]:3128 unreachable; next http://proxy.corp.example:3128",
        "the proxy wants basic authentication; Bearer tokens go in credentialsFile",
        "use a Basic credential or a BEARER header",
    ],
)
def test_scrubber_leaves_ordinary_text_alone(text: str) -> None:
    assert SecretScrubber().scrub(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see http://bob:hunter2@proxy:3128 now", "see http://<redacted>@proxy:3128 now"),
        ("'alice:S3cretPw@proxy:3128' is neither", "'<redacted>@proxy:3128' is neither"),
        ("user@host", "<redacted>@host"),
        ("user@[fd00::1]:3128", "<redacted>@[fd00::1]:3128"),
        ("proxy http://u:p@ss/w@rd@proxy:3128.", "proxy http://<redacted>@proxy:3128."),
        ("already '<redacted>@proxy:3128'", "already '<redacted>@proxy:3128'"),
        # A password holding `://`: the word before it is no proxy scheme, so it may be part of the password.
        ("got 'pw1://x@proxy'", "got '<redacted>@proxy'"),
        ("SOCKS5H://u:p@proxy", "SOCKS5H://<redacted>@proxy"),
    ],
)
def test_scrubber_url_shapes(text: str, expected: str) -> None:
    assert SecretScrubber().scrub(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pw1://x@proxy", "<redacted>@proxy"),
        ("ftp://a:b@h", "<redacted>@h"),
        ("https://a:b@h:1", "https://<redacted>@h:1"),
        ("ftp://alice:S3cret", "ftp://alice:<redacted>"),
        ("ftp://host:21", "ftp://host:21"),
    ],
)
def test_a_quoted_value_keeps_only_a_proxy_scheme(value: str, expected: str) -> None:
    assert redact_value(value) == expected


def test_a_proxy_url_cut_short_without_scheme_is_not_quoted(tmp_path: Path) -> None:
    errors = file_errors(tmp_path, f"httpsProxy: alice:{PASSWORD}\n")
    assert errors.endswith(
        "policy.yaml:1: httpsProxy: 'alice:<redacted>' has no scheme: write http:// or https:// before it"
    )
    assert "'proxy.corp:3128' has no scheme" in file_errors(tmp_path, "httpsProxy: proxy.corp:3128\n")


@pytest.mark.parametrize(
    "text",
    ["Proxy-Authorization: Basic YWxpY2U6cHc=", "bearer abc.def-ghi", "Bearer abcdefgh1", "basic Zm9vYmFy"],
)
def test_scrubber_still_removes_tokens(text: str) -> None:
    assert SecretScrubber().scrub(text).endswith(f" {REDACTED}")


def test_learned_values_are_replaced_in_every_quoted_form() -> None:
    """A command-line value with a password a free-text pattern cannot bound (a space, a quote), cut short, or
    after `--flag=`, as the message quotes it: as is, in repr or JSON, or as a file path collapses `//`."""
    scrubber = SecretScrubber()
    spaced, quoted, cut = "http://a:pw S3c@h:1", "http://a:pw'\"S3c@h:1", "http://a:S3cretPw"
    scrubber.learn_values(["check", f"--config={cut}", "-o", spaced, quoted, "api.example:443"])
    texts = [f"x {spaced!r} y", f"x {quoted!r} y", f"{json.dumps(quoted)}", f"cannot read {Path(cut)}", f"--x={cut}"]
    for text in texts:
        assert "S3c" not in scrubber.scrub(text), text
    assert scrubber.scrub("'api.example:443' -o check") == "'api.example:443' -o check"
