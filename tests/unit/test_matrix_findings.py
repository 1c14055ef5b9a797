"""Defects the policy-option matrix (tests/integration/test_policy_matrix.py) found: `check` accepted a policy the
real Envoy then rejected, or the CLI printed YAML that Envoy reads differently. Each test failed before its fix;
the matrix proves the same with Envoy itself."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from egress_xds import cli
from egress_xds.policy import NodeMode
from egress_xds.sources.file import load_policy_file
from egress_xds.translate import translate
from egress_xds.translate.bootstrap import static_bootstrap
from tests.support.policy_strategies import support_files
from tests.unit.test_policy_parse import errors_of, write

AWKWARD_WORDS = ["y", "Y", "n", "N", "no", "yes", "on", "off", "null", "~", "true", "1e3", "007", "09", "0o17", "1_000"]


# --- a Proxy-Authorization value Envoy refuses -----------------------------------------------------------------


@pytest.mark.parametrize("form", ["credentialsFile", "url", "secret"])
def test_credentials_longer_than_envoy_takes_in_a_header_are_refused(tmp_path: Path, form: str) -> None:
    """Envoy takes at most 16384 bytes in one header value: a longer Proxy-Authorization passed check and made
    Envoy reject the tunnel (sidecar render failed validate at TunnelingConfig.headers_to_add)."""
    from egress_xds.sources.kubernetes.credentials import credentials_from_secret

    token = "Zq" * 8200
    if form == "secret":
        data = {"proxyAuthorization": base64.b64encode(f"Bearer {token}".encode()).decode()}
        with pytest.raises(ValueError, match="16384") as caught:
            credentials_from_secret({"data": data}, "Secret web/corp")
        assert token[:8] not in str(caught.value)
        return
    if form == "url":
        proxy = f"{{url: 'http://alice:{token}@10.0.0.1:3128'}}"
    else:
        secret = tmp_path / "credentials"
        secret.write_text(f"Bearer {token}\n")
        proxy = f"{{url: http://10.0.0.1:3128, credentialsFile: {secret}}}"
    [error] = errors_of(write(tmp_path, f"proxies:\n  corp: {proxy}\nhttpsProxy: corp\n"))
    assert "Envoy takes at most 16384" in error and token[:8] not in error.replace(str(tmp_path), "")


@pytest.mark.parametrize("content", ["Bearer abc\0def\n", "Bearer abc\rdef\n", "svc:pa\0ss\n"])
def test_a_credentials_file_with_a_nul_or_carriage_return_is_refused(tmp_path: Path, content: str) -> None:
    """Envoy's header values must match ^[^\\0\\n\\r]*$: the proxy's tunnel config was NACKed."""
    secret = tmp_path / "credentials"
    secret.write_text(content)
    path = write(
        tmp_path, f"proxies:\n  corp: {{url: http://10.0.0.1:3128, credentialsFile: {secret}}}\nhttpsProxy: corp\n"
    )
    [error] = errors_of(path)
    assert f"{path}:2: proxies.corp.credentialsFile: " in error
    assert "line break or NUL" in error  # a lone \r is kept as it is (a CRLF file still reads as one line)
    shown = error.replace(str(tmp_path), "")
    assert "abc" not in shown and "pa\0" not in shown  # never the credentials


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Bearer t0ken\x01xyz\n", "the control character U+0001, which an HTTP header cannot carry"),
        ("Bearer t0ken\x7fxyz\n", "the control character U+007F"),
        ("svc:t0ken\x1bxyz\n", "the password contains the control character U+001B (RFC 7617 allows none)"),
    ],
)
def test_a_credentials_file_with_another_control_character_is_refused(
    tmp_path: Path, content: str, expected: str
) -> None:
    """Envoy sends such a header, and squid ends the request unread (transaction-end-before-headers): every
    tunnel through the proxy failed while check, render and envoy --mode validate passed (a new-user trial)."""
    secret = tmp_path / "credentials"
    secret.write_text(content)
    path = write(
        tmp_path, f"proxies:\n  corp: {{url: http://10.0.0.1:3128, credentialsFile: {secret}}}\nhttpsProxy: corp\n"
    )
    [error] = errors_of(path)
    assert f"{path}:2: proxies.corp.credentialsFile: " in error and expected in error
    shown = error.replace(str(tmp_path), "")
    assert "t0ken" not in shown and "xyz" not in shown


def test_a_user_name_with_a_colon_in_a_proxy_url_is_refused(tmp_path: Path) -> None:
    """`us%3Aer:pass` would be sent as Basic base64("us:er:pass"), which the proxy reads as user "us"."""
    path = write(tmp_path, "httpsProxy: http://us%3Aer:S3cretpw@10.0.0.1:3128\n")
    [error] = errors_of(path)
    assert "the user name contains ':', which Basic authentication cannot carry (RFC 7617)" in error
    assert "S3cretpw" not in error and "us%3Aer" not in error


# --- a caFile Envoy cannot load -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ["", "not a certificate\n", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "truncated"],
)
def test_a_ca_file_without_loadable_pem_certificates_is_refused(tmp_path: Path, content: str) -> None:
    """Envoy: "file ... is empty" / "Failed to load trusted CA certificates", for the clusters and the listeners."""
    if content == "truncated":
        good = support_files().ca_file.read_text()
        content = good[: len(good) // 2] + "\n-----END CERTIFICATE-----\n"
    ca = tmp_path / "ca.pem"
    ca.write_text(content)
    path = write(tmp_path, f"proxies:\n  corp: {{url: https://10.0.0.1:3128, caFile: {ca}}}\nhttpsProxy: corp\n")
    [error] = errors_of(path)
    assert f"{path}:2: proxies.corp.caFile: {ca}: expected a CA bundle (PEM certificates)" in error


def test_a_real_ca_bundle_is_accepted(tmp_path: Path) -> None:
    ca = support_files().ca_file
    path = write(tmp_path, f"proxies:\n  corp: {{url: https://10.0.0.1:3128, caFile: {ca}}}\nhttpsProxy: corp\n")
    (policy,) = load_policy_file(path).policies
    assert policy.proxies["corp"].ca_file == str(ca)


# --- a Host regex over RE2's program-size limit ---------------------------------------------------------------

# Envoy refuses a regex whose RE2 program exceeds 10,000 instructions; a program has at most about one instruction
# per pattern character, so no generated regex may be longer than that.
ENVOY_MAX_PROGRAM_SIZE = 10_000


def regexes(data: Any) -> list[str]:
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            found += [value] if key == "regex" and isinstance(value, str) else regexes(value)
    elif isinstance(data, list):
        for item in data:
            found += regexes(item)
    return found


def test_a_rule_with_thousands_of_domains_is_split_over_routes_envoy_accepts(tmp_path: Path) -> None:
    domains = ", ".join(f"'*.h{index}.a-longer-domain-name.example'" for index in range(3000))
    path = write(
        tmp_path,
        f"""
        httpProxy: http://10.0.0.1:3128
        standalone: {{forwardProxy: {{listen: "127.0.0.1:3129"}}}}
        rules:
          - {{domains: [{domains}], ports: [80, 8080], action: deny}}
        """,
    )
    (policy,) = load_policy_file(path).policies
    for mode in NodeMode:
        found = regexes(static_bootstrap(translate(policy, mode), node_id="n"))
        assert found, mode
        assert max(len(regex) for regex in found) <= ENVOY_MAX_PROGRAM_SIZE // 2, mode
        # every domain is still matched, by some route of the rule, in order
        for index in (0, 1499, 2999):
            host = f"www.h{index}.a-longer-domain-name.example:8080"
            assert any(re.search(regex, host) for regex in found), (mode, index)
        assert not any(re.search(regex, "www.h3000.a-longer-domain-name.example:8080") for regex in found)


# --- YAML that Envoy reads differently ------------------------------------------------------------------------


class StrictReader(yaml.SafeLoader):
    """A YAML reader that also resolves what YAML 1.1 (y, n) and YAML 1.2 (1e3, 09, 0o17) read as non-strings."""


StrictReader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
StrictReader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)
StrictReader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?0[0-9_]+|0o[0-7_]+|[0-9][0-9_]*)$"), list("-+0123456789")
)


@pytest.mark.parametrize("word", AWKWARD_WORDS)
def test_bootstrap_quotes_node_ids_and_metadata_that_yaml_readers_take_for_booleans_or_numbers(
    word: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Envoy reads an unquoted `id: n` as false and refuses the bootstrap ("node.id: string")."""
    argv = ["bootstrap", "--node-id", word, "--xds-address", "127.0.0.1:18000", "--node-meta", f"{word}={word}"]
    assert cli.main(argv) == 0
    read = yaml.load(capsys.readouterr().out, Loader=StrictReader)
    assert read["node"]["id"] == word
    assert read["node"]["metadata"][word] == word


# --- listen addresses Envoy cannot bind -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "reason"),
    [
        ("[::ffff:127.0.0.2]:10443", "an IPv4-mapped address cannot be bound; write 127.0.0.2"),  # EINVAL
        ("[ff02::1]:10443", "a listener needs a unicast address"),  # EINVAL
        ("224.0.0.1:10443", "a listener needs a unicast address"),  # binds, and never accepts a connection
        ("255.255.255.255:10443", "a listener needs a unicast address"),
    ],
)
def test_a_listen_address_envoy_cannot_bind_is_refused(tmp_path: Path, listen: str, reason: str) -> None:
    """Envoy: "cannot bind '[::ffff:127.0.0.2]:10443': Invalid argument", and the whole listener update fails."""
    path = write(
        tmp_path,
        f"""
        httpsProxy: http://10.0.0.1:3128
        standalone:
          listeners:
            - {{name: gh, listen: "127.0.0.1:10444", target: "api.github.com:443"}}
          forwardProxy: {{listen: "{listen}"}}
        """,
    )
    [error] = errors_of(path)
    assert f"{path}:5: standalone.forwardProxy.listen: '{listen}': {reason}" in error


def test_render_with_an_unusable_admin_address_is_a_usage_error_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`render --static --admin-address 127.0.0.1:0` exited 70 ("internal error (DestinationError)")."""
    path = write(tmp_path, "httpsProxy: http://10.0.0.1:3128\n")
    argv = ["render", "--config", str(path), "--node-id", "n", "--static", "--admin-address", "127.0.0.1:0"]
    assert cli.main(argv) == 2
    assert "port 0 out of range" in capsys.readouterr().err


# --- files that are not text ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["credentialsFile", "caFile"])
def test_a_file_that_is_not_utf8_is_a_config_error_not_a_crash(
    tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Latin-1 password file, or a DER (binary) CA certificate: `check` exited 70, "internal error
    (UnicodeDecodeError)" (also found, and fixed first, by the canary work of issue 16)."""
    binary = tmp_path / "file"
    binary.write_bytes(b"0\x82\x01\x8a0\x82\x01/\xa0\x03" if key == "caFile" else b"svc:p\xe4ss\n")
    path = write(tmp_path, f"proxies:\n  corp: {{url: https://10.0.0.1:3128, {key}: {binary}}}\nhttpsProxy: corp\n")
    assert cli.main(["check", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: proxies.corp.{key}: {binary}: not UTF-8 text" in err
    assert "\\xe4" not in err and "p\xe4ss" not in err
