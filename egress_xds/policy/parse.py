"""Turn a loaded document (YAML/JSON file or environment) into validated `EgressPolicy` values.

Every problem is collected with its field path and line; parsing goes on after an error so that the user sees all
of them at once. Nothing is silently dropped: an entry is either used or reported.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import ssl
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from egress_xds.durations import EXAMPLES, parse_duration
from egress_xds.policy.destinations import (
    BareName,
    DomainPattern,
    IPNetwork,
    host_bits_note,
    is_ip_literal,
    parse_address_or_network,
    parse_domain_pattern,
    parse_host,
    parse_host_port,
    parse_port,
)
from egress_xds.policy.errors import ConfigError, ConfigIssue, describe
from egress_xds.policy.files import read_regular_file
from egress_xds.policy.keys import (
    ACTION_PROXY_KEYS,
    ENDPOINT_KEYS,
    FORWARD_PROXY_KEYS,
    HEALTH_CHECK_KEYS,
    LISTENER_KEYS,
    POLICY_KEYS,
    PROXY_KEYS,
    RULE_KEYS,
    SELECTOR_KEYS,
    SHARED_KEYS,
    STANDALONE_KEYS,
    TOP_LEVEL_KEYS,
)
from egress_xds.policy.model import (
    DENY,
    DIRECT,
    Action,
    Credentials,
    EgressPolicy,
    ExplicitListener,
    ForwardProxyListener,
    HealthCheck,
    NodeSelector,
    PolicySet,
    Proxy,
    ProxyEndpoint,
    RawTcpMode,
    Rule,
    Scheme,
    Standalone,
    ViaProxy,
)
from egress_xds.policy.no_proxy import NoProxy, parse_no_proxy
from egress_xds.policy.proxy_url import (
    ProxyUrlError,
    basic_credentials,
    basic_problem,
    header_value_problem,
    parse_proxy_url,
)
from egress_xds.policy.yaml_tree import FieldPath, LocatedDocument, format_path
from egress_xds.redact import REDACTED, redact_value

T = TypeVar("T")

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DEFAULT_POLICY_NAME = "default"
# Names given to proxies that are written inline as URLs in httpProxy / httpsProxy.
INLINE_PROXY_NAMES = {"httpProxy": "http-proxy", "httpsProxy": "https-proxy"}
# Parsing stops after this many problems: the first ones are what to fix, and a huge broken file stays cheap.
MAX_ISSUES = 100
# Durations of a health check (Envoy accepts more, but an interval beyond an hour checks nothing).
MAX_DURATION_MS = 3_600_000
# credentialsFile and caFile: a CA bundle as large as a platform's (Debian's is ~220 KB) fits with room to spare.
MAX_REFERENCED_FILE_BYTES = 1024 * 1024
UINT32_MAX = 2**32 - 1


class _TooManyIssues(Exception):
    """Raised by `_Context.error` once `MAX_ISSUES` problems are collected."""


class _Context:
    """Collects issues for one document; resolves relative file paths against the document's directory."""

    def __init__(self, document: LocatedDocument, base_dir: Path | None, lenient_no_proxy: bool) -> None:
        self.document = document
        self.base_dir = base_dir
        self.lenient_no_proxy = lenient_no_proxy
        self.issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        # proxies that are defined but invalid: their error is reported once, references to them stay quiet
        self.broken_proxies: set[str] = set()

    def error(self, path: FieldPath, message: str) -> None:
        self.issues.append(self.issue(path, message))
        if len(self.issues) >= MAX_ISSUES:
            raise _TooManyIssues

    def warn(self, path: FieldPath, message: str) -> None:
        self.warnings.append(self.issue(path, message))

    def issue(self, path: FieldPath, message: str) -> ConfigIssue:
        return ConfigIssue(self.document.source, self.document.line_of(path), format_path(path), message)

    def mapping(self, value: Any, path: FieldPath, allowed: frozenset[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping with keys {_listing(allowed)}, got {describe(value)}")
            return None
        for key in value:
            if key not in allowed:
                hint = _closest(str(key), allowed)
                suffix = f"; did you mean {hint!r}?" if hint else ""
                expected = f"expected one of {_listing(allowed)}"
                self.error((*path, key), f"unknown key {describe(str(key))} ({expected}){suffix}")
        return value

    def string(self, value: Any, path: FieldPath) -> str | None:
        if isinstance(value, str) and value.strip():
            return value.strip()
        self.error(path, f"expected a non-empty string, got {describe(value)}")
        return None

    def attempt(self, path: FieldPath, convert: Callable[[], T]) -> T | None:
        """Run a converter that raises ValueError with a user-facing message."""
        try:
            return convert()
        except ValueError as exc:
            self.error(path, str(exc))
            return None

    def read_file(self, value: str, path: FieldPath) -> tuple[Path, str] | None:
        file_path = Path(value)
        if not file_path.is_absolute() and self.base_dir is not None:
            file_path = self.base_dir / file_path
        # The path is quoted as resolved, unless the value is URL-shaped (a URL given where a file is expected:
        # `http://alice:S3cret` resolves to `.../http:/alice:S3cret`, which no URL redaction would recognise).
        shown = file_path if redact_value(value) == value else redact_value(value)
        try:
            content = read_regular_file(file_path, MAX_REFERENCED_FILE_BYTES)
        except OSError as exc:
            self.error(path, f"cannot read {shown}: {exc.strerror}")
            return None
        if len(content) > MAX_REFERENCED_FILE_BYTES:
            self.error(path, f"{shown}: larger than {MAX_REFERENCED_FILE_BYTES // 1024} KiB")
            return None
        try:
            return file_path, content.decode("utf-8")
        except UnicodeDecodeError as exc:  # its bytes are never quoted: the file may hold a password
            self.error(path, f"{shown}: not UTF-8 text (byte {exc.start + 1} is not valid UTF-8)")
            return None


def parse_document(document: LocatedDocument, base_dir: Path | None = None) -> PolicySet:
    """The whole policy set of a document: one policy (top-level keys) or `policies: [...]`.

    Raises ConfigError (and nothing else) for any value tree: wrong types, deep nesting, huge numbers."""
    policies, _ = parse_document_with_warnings(document, base_dir)
    return policies


def parse_document_with_warnings(
    document: LocatedDocument, base_dir: Path | None = None, *, lenient_no_proxy: bool = False
) -> tuple[PolicySet, tuple[ConfigIssue, ...]]:
    """`parse_document`, optionally ignoring bad `noProxy` entries: each becomes a warning instead of an error
    (what the environment source does, as Go's httpproxy does; policy files stay strict)."""
    context = _Context(document, base_dir, lenient_no_proxy)
    if document.value in (None, {}):  # e.g. a file caught half-written: never read as "everything direct"
        raise ConfigError([ConfigIssue(document.source, None, "", "empty policy: expected httpProxy, httpsProxy, ...")])
    _refuse_kubernetes_object(document)
    policies: list[EgressPolicy] = []
    try:
        root = context.mapping(document.value, (), TOP_LEVEL_KEYS)
        if root is not None:
            if "policies" in root:
                policies = _parse_policy_list(context, root)
            else:
                policy = _parse_policy(context, root, (), {})
                policies = [policy] if policy is not None else []
    except _TooManyIssues:
        last = context.issues[-1]
        stop = f"too many problems; stopped after the first {MAX_ISSUES}"
        raise ConfigError([*context.issues, ConfigIssue(last.source, last.line, "", stop)]) from None
    if context.issues:
        raise ConfigError(context.issues)
    return PolicySet(tuple(policies)), tuple(context.warnings)


def _refuse_kubernetes_object(document: LocatedDocument) -> None:
    """A Kubernetes object (an EgressProxy from deploy/examples) is not a policy file: say so, instead of
    "unknown key 'apiVersion'"."""
    value = document.value
    if isinstance(value, dict) and "apiVersion" in value and "kind" in value:
        kind = value["kind"] if isinstance(value["kind"], str) else "object"
        message = (
            f"this is a Kubernetes {redact_value(kind)[:60]}, not a policy file: `serve --kubernetes` reads such "
            "resources from the API server; a policy file holds the EgressProxy's spec (httpProxy, rules, ...)"
        )
        raise ConfigError([ConfigIssue(document.source, document.line_of(("kind",)), "kind", message)])


def _parse_policy_list(context: _Context, root: dict[str, Any]) -> list[EgressPolicy]:
    """`policies:` with optional top-level `proxies:` shared by all of them."""
    for key in POLICY_KEYS - SHARED_KEYS:
        if key in root:
            context.error((key,), "with 'policies:', put this key inside each policy (only 'proxies' is shared)")
    shared = _parse_proxies(context, root.get("proxies", {}), ("proxies",))
    items = root["policies"]
    if not isinstance(items, list) or not items:
        context.error(("policies",), f"expected a non-empty list of policies, got {describe(items)}")
        return []
    policies: list[EgressPolicy] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        path: FieldPath = ("policies", index)
        fields = context.mapping(item, path, POLICY_KEYS)
        if fields is None:
            continue
        if "name" not in fields:
            context.error(path, "each policy in 'policies' needs a 'name'")
        policy = _parse_policy(context, fields, path, shared)
        if policy is None:
            continue
        if policy.name in seen:
            other = f"policies[{seen[policy.name]}]"
            context.error((*path, "name"), f"duplicate policy name {describe(policy.name)} (also {other})")
        seen[policy.name] = index
        policies.append(policy)
    return policies


def _parse_policy(
    context: _Context, fields: dict[str, Any], path: FieldPath, shared: Mapping[str, Proxy]
) -> EgressPolicy | None:
    errors_before = len(context.issues)
    name = DEFAULT_POLICY_NAME
    if "name" in fields:
        name = _parse_name(context, fields["name"], (*path, "name"), "policy") or name
    proxies = dict(shared)
    for proxy_name, proxy in _parse_proxies(context, fields.get("proxies", {}), (*path, "proxies")).items():
        if proxy_name in shared:
            context.error(
                (*path, "proxies", proxy_name), f"proxy {describe(proxy_name)} is already defined at top level"
            )
        proxies[proxy_name] = proxy
    http_proxy = _parse_default_proxy(context, fields, path, "httpProxy", proxies)
    https_proxy = _parse_default_proxy(context, fields, path, "httpsProxy", proxies)
    no_proxy = _parse_no_proxy(context, fields.get("noProxy", ""), (*path, "noProxy"))
    rules = _parse_rules(context, fields.get("rules", []), (*path, "rules"), proxies)
    raw_tcp = RawTcpMode.TUNNEL
    if "rawTcp" in fields:
        raw_tcp = _parse_enum(context, fields["rawTcp"], (*path, "rawTcp"), RawTcpMode) or raw_tcp
    selector = _parse_selector(context, fields.get("nodes", {}), (*path, "nodes"))
    # A default given but not resolved was reported where it failed (its URL, or the proxy it names): what needs it
    # says nothing more.
    defaults_failed = any(
        fields.get(key) not in (None, "") and resolved is None
        for key, resolved in (("httpProxy", http_proxy), ("httpsProxy", https_proxy))
    )
    standalone = _parse_standalone(
        context,
        fields.get("standalone", {}),
        (*path, "standalone"),
        proxies,
        (http_proxy, https_proxy),
        defaults_failed=defaults_failed,
    )
    if len(context.issues) > errors_before:
        return None
    return EgressPolicy(
        name=name,
        proxies=proxies,
        http_proxy=proxies[http_proxy] if http_proxy is not None else None,
        https_proxy=proxies[https_proxy] if https_proxy is not None else None,
        no_proxy=no_proxy,
        rules=tuple(rules),
        raw_tcp=raw_tcp,
        selector=selector or NodeSelector(),
        standalone=standalone or Standalone(),
        source=context.document.source,
    )


def _parse_no_proxy(context: _Context, value: Any, path: FieldPath) -> NoProxy:
    """`noProxy`: a string or a list of strings. A bad entry is an error, or with `lenient_no_proxy` a warning
    (the entry is ignored, the others apply)."""
    items: list[str] = []
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                items.append(item)
            else:
                context.error((*path, index), f"expected a string, got {describe(item)}")
    else:
        context.error(path, f"expected a comma-separated string or a list, got {describe(value)}")
    no_proxy, problems = parse_no_proxy(items)
    for written, network in ((each.raw, each.network) for each in no_proxy.entries if each.network is not None):
        note = host_bits_note(written, network)
        if note is not None:
            context.warn(_no_proxy_path(path, value, written), note)
    hidden = _entries_before_an_at(items)
    for problem in problems:
        element = _no_proxy_path(path, value, problem.raw)
        entry = f"entry {problem.index} {_shown_entry(problem.raw)}"
        if problem.index in hidden:
            entry = f"entry {problem.index} '{REDACTED}'"
            problem = dataclasses.replace(problem, message=_BEFORE_AT)
        if context.lenient_no_proxy:
            context.warn(element, f"{entry} ignored: {problem.message}")
        else:
            context.error(element, f"{entry}: {problem.message}")
    return no_proxy


def _no_proxy_path(path: FieldPath, value: Any, raw: str) -> FieldPath:
    """The field of one NO_PROXY entry: the list item holding it, or the string itself."""
    return (*path, _list_position(value, raw)) if isinstance(value, list) else path


_BEFORE_AT = "not a valid entry, and it stands before an '@' (a URL's user:password?); not shown"


def _entries_before_an_at(items: list[str]) -> set[int]:
    """Indexes (as `parse_no_proxy` counts them) of the entries wholly before the last '@' of their item: a password
    with a ',' in it is split into entries, of which only the last one holds the '@'."""
    hidden: set[int] = set()
    index = 0
    for item in items:
        last_at = item.rfind("@")
        offset = 0
        for part in item.split(","):
            if part.strip():
                if offset + len(part) <= last_at:
                    hidden.add(index)
                index += 1
            offset += len(part) + 1
    return hidden


def _shown_entry(raw: str) -> str:
    """A NO_PROXY entry in a message. `name:x` with a non-numeric `x` may be the `user:password` of a URL split
    at a ',' in the password: what follows the ':' is not shown (IPv6 entries have more than one ':')."""
    return repr(redact_value(raw, url=raw.count(":") == 1))


def _parse_name(context: _Context, value: Any, path: FieldPath, what: str) -> str | None:
    if isinstance(value, str) and NAME_PATTERN.match(value):
        return value
    context.error(path, f"{what} name {describe(value)} must be lower case letters, digits and '-' (at most 63)")
    return None


def _parse_default_proxy(
    context: _Context, fields: dict[str, Any], path: FieldPath, key: str, proxies: dict[str, Proxy]
) -> str | None:
    """`httpProxy`/`httpsProxy`: a URL (defines an inline proxy) or the name of a proxy in `proxies`."""
    value = fields.get(key)
    if value is None or value == "":
        return None
    text = context.string(value, (*path, key))
    if text is None:
        return None
    if "://" not in text:
        if text in proxies:
            return text
        if text in context.broken_proxies:
            return None
        if ":" not in text and "@" not in text:  # a name (a URL without scheme is reported by the URL parser)
            message = f"{describe(text)} is neither a URL (http://host:port) nor a proxy defined in 'proxies'"
            context.error((*path, key), message)
            return None
    proxy = _proxy_from_url(context, text, (*path, key), INLINE_PROXY_NAMES[key])
    if proxy is None:
        return None
    for existing in proxies.values():  # the same URL twice (HTTP_PROXY == HTTPS_PROXY) is one proxy
        same_place = existing.endpoints == proxy.endpoints and existing.scheme == proxy.scheme
        if same_place and existing.credentials == proxy.credentials:
            return existing.name
    if proxy.name in proxies:
        context.error((*path, key), f"proxy name {proxy.name!r} is reserved for the inline {key} URL")
        return None
    proxies[proxy.name] = proxy
    return proxy.name


def _proxy_from_url(context: _Context, url: str, path: FieldPath, name: str) -> Proxy | None:
    try:
        parsed = parse_proxy_url(url)
    except ProxyUrlError as exc:
        context.error(path, str(exc))
        return None
    return Proxy(
        name=name,
        scheme=parsed.scheme,
        endpoints=(ProxyEndpoint(parsed.host, parsed.port),),
        credentials=parsed.credentials,
        sni=parsed.host if parsed.scheme is Scheme.HTTPS and not is_ip_literal(parsed.host) else None,
    )


def _parse_proxies(context: _Context, value: Any, path: FieldPath) -> dict[str, Proxy]:
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        context.error(path, f"expected a mapping of proxy name to proxy, got {describe(value)}")
        return {}
    proxies: dict[str, Proxy] = {}
    for name, spec in value.items():
        proxy_path = (*path, name)
        if _parse_name(context, name, proxy_path, "proxy") is None:
            continue
        if isinstance(spec, str):
            spec = {"url": spec}
        fields = context.mapping(spec, proxy_path, PROXY_KEYS)
        if fields is None:
            context.broken_proxies.add(name)
            continue
        proxy = _parse_proxy(context, name, fields, proxy_path)
        if proxy is not None:
            proxies[name] = proxy
        else:
            context.broken_proxies.add(name)
    return proxies


def _parse_proxy(context: _Context, name: str, fields: dict[str, Any], path: FieldPath) -> Proxy | None:
    if ("url" in fields) == ("endpoints" in fields):
        context.error(path, "give exactly one of 'url' (one endpoint) or 'endpoints' (failover list)")
        return None
    urls: list[tuple[str, int, FieldPath]] = []
    if "url" in fields:
        url = context.string(fields["url"], (*path, "url"))
        if url is not None:
            urls.append((url, 0, (*path, "url")))
    else:
        urls = _endpoint_urls(context, fields["endpoints"], (*path, "endpoints"))
    parsed = []
    for url, priority, url_path in urls:
        try:
            parsed.append((parse_proxy_url(url), priority, url_path))
        except ProxyUrlError as exc:
            context.error(url_path, str(exc))
    if not parsed or len(parsed) != len(urls):
        return None
    first = parsed[0][0]
    for other, _, url_path in parsed[1:]:
        if other.scheme != first.scheme:
            context.error(url_path, f"all endpoints of a proxy use one scheme ({first.scheme.value})")
        if other.credentials != first.credentials:
            context.error(url_path, "all endpoints of a proxy share the same credentials (or use credentialsFile)")
    credentials = first.credentials
    if "credentialsFile" in fields:
        credentials = _read_credentials(context, fields["credentialsFile"], (*path, "credentialsFile"), credentials)
    ca_file = None
    if "caFile" in fields:
        ca_text = context.string(fields["caFile"], (*path, "caFile"))
        loaded = context.read_file(ca_text, (*path, "caFile")) if ca_text is not None else None
        if ca_text is not None and loaded is not None and _check_ca_bundle(context, (*path, "caFile"), *loaded):
            ca_file = str(_resolve(context, ca_text))
        if first.scheme is not Scheme.HTTPS:
            context.error((*path, "caFile"), "caFile only applies to an https:// proxy")
    sni = first.host if first.scheme is Scheme.HTTPS and not is_ip_literal(first.host) else None
    if "sni" in fields:
        sni_text = context.string(fields["sni"], (*path, "sni"))
        sni = context.attempt((*path, "sni"), partial(parse_host, sni_text)) if sni_text is not None else None
        if first.scheme is not Scheme.HTTPS:
            context.error((*path, "sni"), "sni only applies to an https:// proxy")
    endpoints = tuple(ProxyEndpoint(url.host, url.port, priority) for url, priority, _ in parsed)
    if len(set((endpoint.host, endpoint.port) for endpoint in endpoints)) != len(endpoints):
        context.error((*path, "endpoints"), "duplicate endpoint")
    health_check = None
    if "healthCheck" in fields:
        health_check = _parse_health_check(context, fields["healthCheck"], (*path, "healthCheck"))
    elif len(endpoints) > 1:
        health_check = HealthCheck()  # failover needs an active health check (README: healthCheck)
    return Proxy(
        name=name,
        scheme=first.scheme,
        endpoints=endpoints,
        credentials=credentials,
        ca_file=ca_file,
        sni=sni,
        health_check=health_check,
    )


def _check_ca_bundle(context: _Context, path: FieldPath, file_path: Path, content: str) -> bool:
    """A `caFile` must hold PEM certificates that load: Envoy rejects the proxy's clusters otherwise ("Failed to
    load trusted CA certificates"), and, through the listeners that use them, the listeners too."""
    problem = None
    if "-----BEGIN CERTIFICATE-----" not in content:
        problem = "no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
    else:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=content)
        except (ssl.SSLError, ValueError) as exc:
            problem = f"its certificates do not load ({getattr(exc, 'reason', None) or exc})"
    if problem is not None:
        context.error(path, f"{file_path}: expected a CA bundle (PEM certificates), {problem}")
    return problem is None


def _endpoint_urls(context: _Context, value: Any, path: FieldPath) -> list[tuple[str, int, FieldPath]]:
    if not isinstance(value, list) or not value:
        context.error(path, f"expected a non-empty list of URLs or {{url, priority}} entries, got {describe(value)}")
        return []
    urls = []
    for index, item in enumerate(value):
        item_path = (*path, index)
        if isinstance(item, str):
            urls.append((item, 0, item_path))
            continue
        fields = context.mapping(item, item_path, ENDPOINT_KEYS)
        if fields is None:
            continue
        url = context.string(fields.get("url"), (*item_path, "url"))
        priority = fields.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 127:
            context.error((*item_path, "priority"), f"expected a whole number 0-127, got {describe(priority)}")
            continue
        if url is not None:
            urls.append((url, priority, (*item_path, "url")))
    return urls


def _read_credentials(
    context: _Context, value: Any, path: FieldPath, from_url: Credentials | None
) -> Credentials | None:
    """A file holding `user:password`, or a complete `Proxy-Authorization` value such as `Basic dXNlcjpwdw==`."""
    text = context.string(value, path)
    if text is None:
        return None
    if from_url is not None:
        context.error(path, "credentials are given both in the URL and in credentialsFile; keep one")
    loaded = context.read_file(text, path)
    if loaded is None:
        return None
    file_path, content = loaded
    secret = content.strip()
    if not secret or "\n" in secret:
        context.error(path, f"{file_path}: expected one line 'user:password' or a Proxy-Authorization value")
        return None
    scheme_word = secret.split(" ", 1)[0]
    if " " in secret and scheme_word.isalpha():
        credentials = Credentials(header_value=secret)
        problem = header_value_problem(secret)
    elif ":" not in secret:
        context.error(path, f"{file_path}: expected 'user:password' (no ':' found)")
        return None
    else:
        username, _, password = secret.partition(":")
        credentials = basic_credentials(username, password)
        problem = basic_problem(username, password) or header_value_problem(credentials.header_value)
    # Envoy would refuse the header, or the proxy could not read it.
    if problem is not None:
        context.error(path, f"{file_path}: {problem}")
        return None
    return credentials


def _parse_health_check(context: _Context, value: Any, path: FieldPath) -> HealthCheck | None:
    fields = context.mapping(value, path, HEALTH_CHECK_KEYS)
    if fields is None:
        return None
    default = HealthCheck()
    interval = _duration_ms(context, fields.get("interval"), (*path, "interval"), default.interval_ms)
    timeout = _duration_ms(context, fields.get("timeout"), (*path, "timeout"), default.timeout_ms)
    unhealthy = _positive(context, fields.get("unhealthyThreshold"), (*path, "unhealthyThreshold"), 2)
    healthy = _positive(context, fields.get("healthyThreshold"), (*path, "healthyThreshold"), 1)
    return HealthCheck(interval, timeout, unhealthy, healthy)


def _duration_ms(context: _Context, value: Any, path: FieldPath, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, str):
        context.error(path, f"expected a duration like {EXAMPLES}, got {describe(value)}")
        return default
    try:
        milliseconds = parse_duration(value) * 1000
    except ValueError as error:
        context.error(path, f"{describe(value)} {error}")  # describe: a URL's password is redacted
        return default
    if milliseconds > MAX_DURATION_MS:
        context.error(path, "a duration must be at most 1h")
        return default
    if milliseconds <= 0:
        context.error(path, "a duration must be positive")
    elif milliseconds < 1:
        context.error(path, f"{value!r} is below the 1ms resolution: a duration must be at least 1ms")
    return int(milliseconds)


def _positive(context: _Context, value: Any, path: FieldPath, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= UINT32_MAX:
        context.error(path, f"expected a whole number 1-{UINT32_MAX}, got {describe(value)}")
        return default
    return value


def _parse_rules(context: _Context, value: Any, path: FieldPath, proxies: Mapping[str, Proxy]) -> list[Rule]:
    if value in (None, []):
        return []
    if not isinstance(value, list):
        context.error(path, f"expected a list of rules, got {describe(value)}")
        return []
    rules = []
    for index, item in enumerate(value):
        item_path = (*path, index)
        fields = context.mapping(item, item_path, RULE_KEYS)
        if fields is None:
            continue
        if "action" not in fields:
            context.error(item_path, "a rule needs an 'action': direct, deny or {proxy: NAME}")
            continue
        action = _parse_action(context, fields["action"], (*item_path, "action"), proxies)
        name = f"rule {index + 1}"
        if fields.get("name") is not None:
            name = context.string(fields["name"], (*item_path, "name")) or name
        domains = [
            pattern
            for position, entry in enumerate(_list_of(context, fields.get("domains"), (*item_path, "domains")))
            if (pattern := _parse_domain(context, entry, (*item_path, "domains", position))) is not None
        ]
        cidrs = [
            network
            for position, entry in enumerate(_list_of(context, fields.get("cidrs"), (*item_path, "cidrs")))
            if (network := _parse_cidr(context, entry, (*item_path, "cidrs", position))) is not None
        ]
        ports = [
            port
            for position, entry in enumerate(_list_of(context, fields.get("ports"), (*item_path, "ports")))
            if (port := context.attempt((*item_path, "ports", position), partial(parse_port, entry)))
        ]
        if action is not None:
            rules.append(Rule(name, tuple(domains), tuple(cidrs), tuple(sorted(set(ports))), action))
    return rules


def _parse_action(context: _Context, value: Any, path: FieldPath, proxies: Mapping[str, Proxy]) -> Action | None:
    if value == "direct":
        return DIRECT
    if value == "deny":
        return DENY
    if isinstance(value, dict):
        fields = context.mapping(value, path, ACTION_PROXY_KEYS)
        if fields is None or "proxy" not in fields:
            context.error(path, "expected {proxy: NAME}")
            return None
        name = fields["proxy"]
        if not isinstance(name, str):
            context.error((*path, "proxy"), f"expected a proxy name, got {describe(name)}")
            return None
        if name in context.broken_proxies:
            return None
        if name not in proxies:
            known = ", ".join(sorted(proxies)) or "none defined"
            context.error((*path, "proxy"), f"unknown proxy {describe(name)} (defined: {known})")
            return None
        return ViaProxy(proxies[name])
    context.error(path, f"expected direct, deny or {{proxy: NAME}}, got {describe(value)}")
    return None


def _parse_domain(context: _Context, value: Any, path: FieldPath) -> DomainPattern | None:
    """Rule domains: `example.com` (exactly), `.example.com` or `*.example.com` (subdomains only)."""
    if not isinstance(value, str):
        context.error(path, f"expected a domain string, got {describe(value)}")
        return None
    if is_ip_literal(value.strip()):
        context.error(path, f"{describe(value.strip())} is an IP address; put addresses in 'cidrs'")
        return None
    try:
        return parse_domain_pattern(value, BareName.EXACTLY)
    except ValueError as exc:
        context.error(path, f"{describe(value.strip())}: {exc}")
        return None


def _parse_cidr(context: _Context, value: Any, path: FieldPath) -> IPNetwork | None:
    """Rule CIDRs: `ADDRESS/PREFIX` or one address; host bits are cleared, with a warning (as NO_PROXY does)."""
    if not isinstance(value, str):
        context.error(path, f"expected a CIDR string such as 10.0.0.0/8, got {describe(value)}")
        return None
    if "@" in value:  # the value may hold a password: neither it nor a reason quoting it is shown
        context.error(path, f"{describe(value)} is not a valid CIDR or IP address")
        return None
    try:
        network = parse_address_or_network(value)
    except ValueError as exc:
        context.error(path, str(exc))
        return None
    note = host_bits_note(value, network)
    if note is not None:
        context.warn(path, note)
    return network


def _parse_selector(context: _Context, value: Any, path: FieldPath) -> NodeSelector | None:
    if value in (None, {}):
        return None
    fields = context.mapping(value, path, SELECTOR_KEYS)
    if fields is None:
        return None
    id_glob = context.string(fields.get("id", "*"), (*path, "id"))
    metadata = fields.get("metadata", {})
    service_account = None
    if "serviceAccount" in fields:
        service_account = context.string(fields["serviceAccount"], (*path, "serviceAccount"))
        if service_account is None:
            return None
    if id_glob is None:
        return None
    if not isinstance(metadata, dict) or not all(_is_metadata_value(item) for item in metadata.values()):
        context.error((*path, "metadata"), "expected a mapping of metadata key to string value")
        return None
    return NodeSelector(
        id_glob,
        {str(key): _metadata_text(item) for key, item in metadata.items()},
        service_account_glob=service_account,
    )


def _is_metadata_value(value: Any) -> bool:
    return isinstance(value, str | bool) or (isinstance(value, int) and value.bit_length() <= 64)


def _metadata_text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_standalone(
    context: _Context,
    value: Any,
    path: FieldPath,
    proxies: Mapping[str, Proxy],
    default_proxies: tuple[str | None, str | None],
    *,
    defaults_failed: bool = False,
) -> Standalone | None:
    http_proxy, https_proxy = default_proxies
    if value in (None, {}):
        return None
    fields = context.mapping(value, path, STANDALONE_KEYS)
    if fields is None:
        return None
    listeners = []
    seen_names: set[str] = set()
    for index, item in enumerate(_list_of(context, fields.get("listeners"), (*path, "listeners"))):
        item_path = (*path, "listeners", index)
        entry = context.mapping(item, item_path, LISTENER_KEYS)
        if entry is None:
            continue
        listener = _parse_explicit_listener(context, entry, item_path, proxies, https_proxy)
        if listener is None:
            continue
        if listener.name in seen_names:
            context.error((*item_path, "name"), f"duplicate listener name {describe(listener.name)}")
        seen_names.add(listener.name)
        listeners.append(listener)
    forward_proxy = None
    if "forwardProxy" in fields:
        forward_fields = context.mapping(fields["forwardProxy"], (*path, "forwardProxy"), FORWARD_PROXY_KEYS)
        if forward_fields is not None:
            listen = _parse_listen(context, forward_fields.get("listen"), (*path, "forwardProxy", "listen"))
            plain, tunnels = http_proxy or https_proxy, https_proxy or http_proxy  # each falls back to the other
            if plain is None or tunnels is None:
                if not defaults_failed:
                    context.error((*path, "forwardProxy"), "a forward proxy needs httpProxy or httpsProxy to be set")
            elif listen is not None:
                forward_proxy = ForwardProxyListener(*listen, http_proxy=proxies[plain], https_proxy=proxies[tunnels])
    addresses = [(listener.listen_host, listener.listen_port) for listener in listeners]
    if forward_proxy is not None:
        addresses.append((forward_proxy.listen_host, forward_proxy.listen_port))
    if len(set(addresses)) != len(addresses):
        context.error(path, "two standalone listeners use the same listen address")
    return Standalone(tuple(listeners), forward_proxy)


def _parse_explicit_listener(
    context: _Context,
    fields: dict[str, Any],
    path: FieldPath,
    proxies: Mapping[str, Proxy],
    https_proxy: str | None,
) -> ExplicitListener | None:
    name = _parse_name(context, fields.get("name"), (*path, "name"), "listener")
    listen = _parse_listen(context, fields.get("listen"), (*path, "listen"))
    target_text = context.string(fields.get("target"), (*path, "target"))
    target = None
    if target_text is not None:
        target = context.attempt((*path, "target"), lambda: parse_host_port(target_text))
    if "action" in fields:
        action = _parse_action(context, fields["action"], (*path, "action"), proxies)
    elif https_proxy is not None:
        action = ViaProxy(proxies[https_proxy])
    else:
        action = DIRECT
    if name is None or listen is None or target is None or action is None:
        return None
    return ExplicitListener(name, listen[0], listen[1], target[0], target[1], action)


def _parse_listen(context: _Context, value: Any, path: FieldPath) -> tuple[str, int] | None:
    text = context.string(value, path)
    if text is None:
        return None
    result = context.attempt(path, lambda: parse_host_port(text))
    if result is not None and not is_ip_literal(result[0]):
        message = f"listen address must be an IP address (e.g. 127.0.0.1:{result[1]}), got {describe(text)}"
        context.error(path, message)
        return None
    if result is not None and (problem := _unbindable(result[0])) is not None:
        context.error(path, f"{describe(text)}: {problem}")
        return None
    return result


def _unbindable(host: str) -> str | None:
    """Why Envoy cannot listen on this IP (it fails to bind, and the whole listener update is rejected), or None."""
    address = ipaddress.ip_address(host.strip("[]"))
    if address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
        return "a listener needs a unicast address (this is a multicast or broadcast address)"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"an IPv4-mapped address cannot be bound; write {address.ipv4_mapped}"
    return None


def _parse_enum(context: _Context, value: Any, path: FieldPath, enum_type: type[RawTcpMode]) -> RawTcpMode | None:
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum_type)
        context.error(path, f"expected one of {allowed}, got {describe(value)}")
        return None


def _list_of(context: _Context, value: Any, path: FieldPath) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        context.error(path, f"expected a list, got {describe(value)}")
        return []
    return value


def _list_position(items: list[Any], raw: str) -> int:
    for index, item in enumerate(items):
        if isinstance(item, str) and raw in item:
            return index
    return 0


def _resolve(context: _Context, value: str) -> Path:
    path = Path(value)
    if not path.is_absolute() and context.base_dir is not None:
        path = context.base_dir / path
    return path


def _listing(keys: frozenset[str]) -> str:
    return ", ".join(sorted(keys))


def _closest(key: str, allowed: frozenset[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    return matches[0] if matches else None
