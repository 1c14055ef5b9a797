"""Remove proxy credentials from free text: Envoy's NACK messages and log lines.

`redact.py` cleans structured configuration, where a secret sits under a known key. Free text has no keys: Envoy
may quote the configuration it rejects (a validation error prints the offending message, headers included), and
that text flows into logs, CSDS, the admin API and `egress-xds status`. So the scrubber replaces every credential
the server has ever served (it learns them from each new policy set, and never forgets one, because a NACK may
quote a configuration that has been replaced since), and, as a safety net, anything shaped like a `Basic` /
`Bearer` token, and the userinfo of anything URL-shaped, with or without a scheme (`redact.redact_url_text`): a
password the server never served (one in a rejected reload, say) is covered too.

Values whose boundaries are known (the words of a command line) can be taught with `learn_values`: free-text
redaction cannot tell where a password with a space or a quote ends, so each such value, in the forms a message
quotes it (as is, `repr`, JSON, as a file path shows it), is replaced by its `redact.redact_value` form.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import PurePath

from egress_xds.policy.model import Credentials, PolicySet
from egress_xds.redact import REDACTED, redact_url_text, redact_value

# Shorter strings would be replaced inside ordinary words; credentials are longer than this in practice, and the
# token patterns below catch what a short password turns into on the wire.
MIN_SECRET_LENGTH = 4
# A token is not an ordinary word: "basic authentication" and "Bearer tokens" stay readable. Base64 of
# `user:password`, JWTs and opaque tokens hold a capital, a digit or punctuation.
_TOKEN = re.compile(r"(?i)\b(basic|bearer)(\s+)(?!(?-i:[a-z]+)(?![\w.~+/=-]))(?-i:[A-Za-z0-9._~+/=-]{6,})")


class SecretScrubber:
    """Replaces known credentials and credential-shaped tokens with `<redacted>`.

    `policies` is called on every `scrub` to notice a new policy set (an identity check, so it is cheap); the
    scrubber may be used from any thread (log records from library threads).
    """

    def __init__(self, policies: Callable[[], PolicySet] | None = None) -> None:
        self._policies = policies
        self._seen: PolicySet | None = None
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._values: dict[str, str] = {}
        self._values_pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def learn(self, policies: PolicySet) -> None:
        """Remember every credential of a policy set."""
        found = set(_secrets_of(_credentials(policies)))
        with self._lock:
            if found - self._secrets:
                self._secrets |= found
                alternatives = sorted(self._secrets, key=len, reverse=True)  # longest first: no partial leftovers
                self._pattern = re.compile("|".join(re.escape(secret) for secret in alternatives))

    def learn_values(self, values: Iterable[str]) -> None:
        """Remember values that may hold a credential (a proxy URL typed into an argument), with the form each
        is shown in instead: only a value that `redact_value` changes (userinfo, a URL cut short) is kept."""
        found: dict[str, str] = {}
        for word in values:
            # `--flag=VALUE` and a value mistaken for a flag (`--http://...`) hold the value after a prefix.
            forms = {word, word.lstrip("-"), word.partition("=")[2]} if word.startswith("-") else {word}
            found |= _value_forms(value for value in forms if value)
        with self._lock:
            self._values |= found
            if self._values:
                alternatives = sorted(self._values, key=len, reverse=True)
                self._values_pattern = re.compile("|".join(re.escape(value) for value in alternatives))

    def scrub(self, text: str) -> str:
        values_pattern = self._values_pattern
        if values_pattern is not None:
            text = values_pattern.sub(lambda match: self._values[match.group(0)], text)
        if self._policies is not None:
            current = self._policies()
            if current is not self._seen:
                self.learn(current)
                self._seen = current
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        text = _TOKEN.sub(rf"\1\2{REDACTED}", text)
        return redact_url_text(text)


def _credentials(policies: PolicySet) -> Iterable[Credentials]:
    for policy in policies.policies:
        for proxy in policy.proxies.values():
            if proxy.credentials is not None:
                yield proxy.credentials


def _secrets_of(credentials: Iterable[Credentials]) -> Iterable[str]:
    """The token of the header value (the whole value if it has no scheme word, so that `Basic <redacted>` still
    says what kind of credential it was), and for `Basic` the decoded `user:password` and the password."""
    for item in credentials:
        scheme, _, token = item.header_value.strip().partition(" ")
        candidates = [token.strip()] if token.strip() else [scheme]
        if scheme.lower() == "basic" and token:
            try:
                decoded = base64.b64decode(token.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            candidates += [decoded, decoded.partition(":")[2]]
        yield from (candidate for candidate in candidates if len(candidate) >= MIN_SECRET_LENGTH)


def _value_forms(values: Iterable[str]) -> dict[str, str]:
    """Each value that `redact_value` changes, in the forms a message may quote it, -> its redacted form."""
    found: dict[str, str] = {}
    for value in values:
        shown = redact_value(value)
        if shown == value:
            continue
        found[value] = shown
        found[repr(value)[1:-1]] = repr(shown)[1:-1]
        found[json.dumps(value)[1:-1]] = json.dumps(shown)[1:-1]
        found[str(PurePath(value))] = shown  # as a file path shows it: `//` collapsed, no trailing `/`
    return found
