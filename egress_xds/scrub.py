"""Remove proxy credentials from free text: Envoy's NACK messages and log lines.

`redact.py` cleans structured configuration, where a secret sits under a known key. Free text has no keys: Envoy
may quote the configuration it rejects (a validation error prints the offending message, headers included), and
that text flows into logs, CSDS, the admin API and `egress-xds status`. So the scrubber replaces every credential
the server has ever served (it learns them from each new policy set, and never forgets one, because a NACK may
quote a configuration that has been replaced since), and, as a safety net, anything shaped like a `Basic` /
`Bearer` token, and the userinfo of anything URL-shaped, with or without a scheme (`redact.redact_url_text`): a
password the server never served (one in a rejected reload, say) is covered too.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable, Iterable

from egress_xds.policy.model import Credentials, PolicySet
from egress_xds.redact import REDACTED, redact_url_text

# Shorter strings would be replaced inside ordinary words; credentials are longer than this in practice, and the
# token patterns below catch what a short password turns into on the wire.
MIN_SECRET_LENGTH = 4
_TOKEN = re.compile(r"(?i)\b(basic|bearer)(\s+)[A-Za-z0-9._~+/=-]{6,}")


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
        self._lock = threading.Lock()

    def learn(self, policies: PolicySet) -> None:
        """Remember every credential of a policy set."""
        found = set(_secrets_of(_credentials(policies)))
        with self._lock:
            if found - self._secrets:
                self._secrets |= found
                alternatives = sorted(self._secrets, key=len, reverse=True)  # longest first: no partial leftovers
                self._pattern = re.compile("|".join(re.escape(secret) for secret in alternatives))

    def scrub(self, text: str) -> str:
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
