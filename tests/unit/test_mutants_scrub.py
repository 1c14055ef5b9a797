"""The scrubber's memory of served credentials, which mutation testing (scripts/mutation.sh scrub) showed untested.

The safety net (URL userinfo, `Basic` / `Bearer` tokens) is covered by test_redaction.py; these tests put the
secrets where no pattern finds them (bare words in free text, as Envoy quotes a rejected header), so only the
learned credentials can remove them.
"""

from __future__ import annotations

import base64
from pathlib import Path

from egress_xds.policy.model import PolicySet
from egress_xds.redact import REDACTED
from egress_xds.scrub import MIN_SECRET_LENGTH, SecretScrubber
from egress_xds.sources.file import load_policy_file


def policies(tmp_path: Path, *credentials: str) -> PolicySet:
    """A policy set with one proxy per credentials file content."""
    proxies = []
    for index, content in enumerate(credentials):
        secret_file = tmp_path / f"cred{index}"
        secret_file.write_text(content + "\n")
        proxies.append(f"  p{index}: {{url: http://proxy{index}.corp.test:3128, credentialsFile: {secret_file}}}")
    proxies.append("  plain: http://plain.corp.test:3128")  # no credentials: nothing to learn
    path = tmp_path / "policy.yaml"
    path.write_text("proxies:\n" + "\n".join(proxies) + "\nhttpsProxy: plain\n")
    return load_policy_file(path)


def test_learned_basic_credentials_are_removed_in_every_form(tmp_path: Path) -> None:
    token = base64.b64encode(b"alice:Zq9wPass").decode()
    scrubber = SecretScrubber()
    scrubber.learn(policies(tmp_path, "alice:Zq9wPass"))
    # Bare words: no URL, no `Basic ` in front. The token, the decoded pair and the password alone all go.
    assert scrubber.scrub(f"value {token} rejected") == f"value {REDACTED} rejected"
    assert scrubber.scrub("pair alice:Zq9wPass here") == f"pair {REDACTED} here"
    assert scrubber.scrub("password=Zq9wPass;") == f"password={REDACTED};"
    # The user name is no secret.
    assert scrubber.scrub("user alice") == "user alice"


def test_a_header_credential_keeps_its_scheme_word(tmp_path: Path) -> None:
    scrubber = SecretScrubber()
    scrubber.learn(policies(tmp_path, "Negotiate c2VjcmV0dG9r"))
    # Only the token is learned, so what kind of credential it was stays readable.
    assert scrubber.scrub("got Negotiate c2VjcmV0dG9r") == f"got Negotiate {REDACTED}"
    assert scrubber.scrub("Negotiate alone") == "Negotiate alone"


def test_the_longest_secret_is_replaced_first(tmp_path: Path) -> None:
    # `Zq9w` is the password of one proxy and a prefix of another's: the longer one goes whole.
    scrubber = SecretScrubber()
    scrubber.learn(policies(tmp_path, "bob:Zq9w", "carol:Zq9wLonger"))
    assert scrubber.scrub("x Zq9wLonger y") == f"x {REDACTED} y"
    assert scrubber.scrub("x Zq9w y") == f"x {REDACTED} y"


def test_short_secrets_are_not_learned(tmp_path: Path) -> None:
    short = "q" * (MIN_SECRET_LENGTH - 1)
    just = "w" * MIN_SECRET_LENGTH
    (tmp_path / "short").mkdir()
    (tmp_path / "just").mkdir()
    scrubber = SecretScrubber()
    scrubber.learn(policies(tmp_path / "short", f"u:{short}"))
    assert scrubber.scrub(f"word {short} word") == f"word {short} word"
    scrubber.learn(policies(tmp_path / "just", f"u:{just}"))
    assert scrubber.scrub(f"word {just} word") == f"word {REDACTED} word"


def test_a_policy_callable_is_followed_and_nothing_is_forgotten(tmp_path: Path) -> None:
    first_dir, second_dir = tmp_path / "1", tmp_path / "2"
    first_dir.mkdir()
    second_dir.mkdir()
    first = policies(first_dir, "alice:FirstPw1")
    second = policies(second_dir, "alice:SecondPw2")
    current = [first]
    calls = []

    def source() -> PolicySet:
        calls.append(1)
        return current[0]

    scrubber = SecretScrubber(source)
    assert scrubber.scrub("a FirstPw1 b") == f"a {REDACTED} b"
    current[0] = second
    # A NACK may quote the configuration served before: both passwords go.
    assert scrubber.scrub("FirstPw1 SecondPw2") == f"{REDACTED} {REDACTED}"
    assert len(calls) == 2  # asked on every scrub


def test_a_scrubber_without_credentials_changes_nothing_but_the_safety_net(tmp_path: Path) -> None:
    scrubber = SecretScrubber(lambda: policies(tmp_path))
    assert scrubber.scrub("plain text, no secret") == "plain text, no secret"
    assert scrubber.scrub("Proxy-Authorization: Basic YWxpY2U6cHc=") == f"Proxy-Authorization: Basic {REDACTED}"


def test_a_password_holding_a_colon_is_learned_whole(tmp_path: Path) -> None:
    # `user:password` splits at the first ':' (RFC 7617): the rest, colons included, is the password.
    scrubber = SecretScrubber()
    scrubber.learn(policies(tmp_path, "alice:pa:ss99"))
    assert scrubber.scrub("x pa:ss99 y") == f"x {REDACTED} y"
    assert scrubber.scrub("x ss99 y") == "x ss99 y"


def test_a_basic_value_that_is_no_base64_is_learned_as_it_is(tmp_path: Path) -> None:
    scrubber = SecretScrubber()
    scrubber.learn(policies(tmp_path, "Basic n0t*base64!"))
    assert scrubber.scrub("saw n0t*base64! there") == f"saw {REDACTED} there"
    # Nothing else was made up from it.
    assert scrubber.scrub("XXXX and n0t") == "XXXX and n0t"


def test_a_token_of_several_words_is_replaced_whole(tmp_path: Path) -> None:
    # Only the scheme word stands before the first space; the rest is the secret, spaces included.
    scrubber = SecretScrubber()
    scrubber.learn(policies(tmp_path, "Digest user=bob, response=9f8e7d"))
    assert scrubber.scrub("sent Digest user=bob, response=9f8e7d") == f"sent Digest {REDACTED}"
