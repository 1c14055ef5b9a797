"""Hypothesis strategies for policy documents: valid ones (`check` accepts them), and mutations of them.

`valid_policy_documents()` draws plain dicts in the file format (README "Policy file reference"): https proxies
with and without `caFile`, credentials in the URL (any printable password, URL-encoded) or in `credentialsFile`,
failover endpoints, every kind of rule, every NO_PROXY form, `rawTcp`, standalone listeners and a forward proxy,
and `policies:` with node selectors. Every password starts with `SECRET_MARK`, so a test can tell whether any
piece of a password reached a message. The files that `caFile` and `credentialsFile` name are created once per
process (`support_files()`).

`mutated_policy_documents()` starts from a valid document and replaces, deletes or adds one value somewhere:
wrong types, nothing, huge numbers, deep nesting, long strings, credentials in every URL shape.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import shutil
import string
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

# The start of every generated password: alphanumeric (so the same in a URL-encoded form), and no English word
# shares four letters with it. A message containing any 4 characters of it leaked a password.
SECRET_MARK = "Zq9Xw7Kv"
CREDENTIALS_FILE_PASSWORD = f"{SECRET_MARK}-file pass:word"

Document = dict[str, Any]


@dataclass(frozen=True)
class SupportFiles:
    ca_file: Path
    credentials_file: Path
    bearer_file: Path


@cache
def support_files() -> SupportFiles:
    """A CA certificate and two credential files, written once per process (removed at exit)."""
    from tests.support.tls import LabCA

    directory = Path(tempfile.mkdtemp(prefix="egress-xds-strategies-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    ca = LabCA(directory / "ca")
    credentials = directory / "credentials"
    credentials.write_text(f"svc:{CREDENTIALS_FILE_PASSWORD}\n")
    bearer = directory / "bearer"
    bearer.write_text(f"Bearer {SECRET_MARK}token\n")
    return SupportFiles(ca.ca_pem, credentials, bearer)


def leaked_secret(text: str) -> str | None:
    """A 4-character piece of `SECRET_MARK` found in `text`, or None."""
    for start in range(len(SECRET_MARK) - 3):
        piece = SECRET_MARK[start : start + 4]
        if piece in text:
            return piece
    return None


def plain_text(*args: Any, **kwargs: Any) -> st.SearchStrategy[str]:
    """`st.text`, never holding a piece of `SECRET_MARK`: Hypothesis also draws the string constants of the code
    it runs (`SECRET_MARK` among them), and a value that is not a password may be quoted in a message."""
    return st.text(*args, **kwargs).filter(lambda text: leaked_secret(text) is None)


# --- names and addresses --------------------------------------------------------------------------------------

_LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_TLD = st.sampled_from(["example", "test", "corp", "internal", "com"])
hostnames = st.builds(lambda labels, tld: ".".join([*labels, tld]), st.lists(_LABEL, min_size=0, max_size=3), _TLD)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda address: address.ipv4_mapped is None).map(str)
ports = st.integers(min_value=1, max_value=65535)
proxy_names = st.from_regex(r"\A[a-z][a-z0-9]{0,6}\Z").filter(lambda name: name not in {"http", "https"})
_NAME_CHARS = string.ascii_letters + string.digits + " -_."
rule_names = plain_text(_NAME_CHARS, min_size=1, max_size=20).filter(str.strip)


def networks(version: int) -> st.SearchStrategy[str]:
    bits = 32 if version == 4 else 128
    return st.builds(
        lambda address, prefix: str(ipaddress.ip_network(f"{address}/{prefix}", strict=False)),
        st.ip_addresses(v=version),
        st.integers(min_value=0, max_value=bits),
    )


cidrs = st.one_of(networks(4), networks(6))

# --- proxies --------------------------------------------------------------------------------------------------

passwords = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12).map(
    lambda tail: SECRET_MARK + tail
)
usernames = plain_text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=8)


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@st.composite
def proxy_urls(draw: st.DrawFn, scheme: str | None = None, credentials: tuple[str, str] | None = None) -> str:
    scheme = scheme or draw(st.sampled_from(["http", "https"]))
    host = draw(st.one_of(hostnames, ipv4, ipv6))
    port = draw(st.one_of(st.none(), ports))
    userinfo = f"{quote(credentials[0], safe='')}:{quote(credentials[1], safe='')}@" if credentials else ""
    return f"{scheme}://{userinfo}{_host_in_url(host)}{'' if port is None else f':{port}'}"


@st.composite
def proxy_specs(draw: st.DrawFn) -> Any:
    """A proxy: a URL, `{url: ...}` with options, or `{endpoints: [...]}` (same scheme and credentials)."""
    scheme = draw(st.sampled_from(["http", "https"]))
    files = support_files()
    use_file = draw(st.sampled_from(["none", "url", "file", "bearer"]))
    credentials = (draw(usernames), draw(passwords)) if use_file == "url" else None
    form = draw(st.sampled_from(["url", "mapping", "endpoints"]))
    if form == "url":
        return draw(proxy_urls(scheme, credentials))
    spec: dict[str, Any] = {}
    if form == "mapping":
        spec["url"] = draw(proxy_urls(scheme, credentials))
    else:
        urls = draw(st.lists(proxy_urls(scheme, credentials), min_size=1, max_size=3, unique_by=_endpoint_key))
        spec["endpoints"] = [
            url if draw(st.booleans()) else {"url": url, "priority": draw(st.integers(0, 127))} for url in urls
        ]
    if use_file in ("file", "bearer"):
        spec["credentialsFile"] = str(files.credentials_file if use_file == "file" else files.bearer_file)
    if scheme == "https":
        if draw(st.booleans()):
            spec["caFile"] = str(files.ca_file)
        if draw(st.booleans()):
            spec["sni"] = draw(hostnames)
    if draw(st.booleans()):
        spec["healthCheck"] = draw(health_checks())
    return spec


def _endpoint_key(url: str) -> str:
    """Endpoints of one proxy must differ in host:port (the default port counts)."""
    rest = url.split("://", 1)[1].rpartition("@")[2]
    default = "443" if url.startswith("https") else "80"
    return rest if rest.rsplit(":", 1)[-1].isdigit() and not rest.endswith("]") else f"{rest}:{default}"


def durations() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(1, 3_600_000).map(lambda value: f"{value}ms"),
        st.integers(1, 3600).map(lambda value: f"{value}s"),
        st.integers(1, 60).map(lambda value: f"{value}m"),
    )


@st.composite
def health_checks(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.sets(st.sampled_from(["interval", "timeout", "unhealthyThreshold", "healthyThreshold"])))
    check: dict[str, Any] = {}
    for key in keys:
        check[key] = draw(durations() if key in ("interval", "timeout") else st.integers(1, 10))
    return check


# --- NO_PROXY, rules, standalone ------------------------------------------------------------------------------

no_proxy_entries = st.one_of(
    hostnames,
    hostnames.map(lambda name: f".{name}"),
    hostnames.map(lambda name: f"*.{name}"),
    ipv4,
    ipv6,
    ipv6.map(lambda address: f"[{address}]"),
    cidrs,
    st.builds(lambda name, port: f"{name}:{port}", st.one_of(hostnames, ipv4), ports),
    st.builds(lambda address, port: f"[{address}]:{port}", ipv6, ports),
    st.just("*"),
)


@st.composite
def no_proxy_values(draw: st.DrawFn) -> str | list[str]:
    entries = draw(st.lists(no_proxy_entries, max_size=6))
    if draw(st.booleans()):
        return ",".join(entries)
    return entries


@st.composite
def rules(draw: st.DrawFn, proxy_names_defined: list[str]) -> dict[str, Any]:
    actions: list[Any] = ["direct", "deny", *({"proxy": name} for name in proxy_names_defined)]
    rule: dict[str, Any] = {"action": draw(st.sampled_from(actions))}
    if draw(st.booleans()):
        rule["name"] = draw(rule_names)
    domains = st.one_of(hostnames, hostnames.map(lambda name: f".{name}"), hostnames.map(lambda name: f"*.{name}"))
    if draw(st.booleans()):
        rule["domains"] = draw(st.lists(domains, max_size=3))
    if draw(st.booleans()):
        rule["cidrs"] = draw(st.lists(cidrs, max_size=3))
    if draw(st.booleans()):
        rule["ports"] = draw(st.lists(ports, max_size=3))
    return rule


@st.composite
def standalone_sections(draw: st.DrawFn, proxy_names_defined: list[str], has_default_proxy: bool) -> dict[str, Any]:
    addresses = draw(
        st.lists(st.tuples(st.sampled_from(["127.0.0.1", "127.0.0.2", "::1"]), ports), max_size=4, unique=True)
    )
    section: dict[str, Any] = {}
    forward = None
    if has_default_proxy and addresses and draw(st.booleans()):
        forward = addresses.pop()
    listeners = []
    actions: list[Any] = ["direct", "deny", *({"proxy": name} for name in proxy_names_defined)]
    for index, (host, port) in enumerate(addresses):
        target = draw(st.one_of(hostnames, ipv4, ipv6.map(lambda address: f"[{address}]")))
        listener: dict[str, Any] = {
            "name": f"listener-{index}",
            "listen": f"{_host_in_url(host)}:{port}",
            "target": f"{target}:{draw(ports)}",
        }
        if draw(st.booleans()):
            listener["action"] = draw(st.sampled_from(actions))
        listeners.append(listener)
    if listeners:
        section["listeners"] = listeners
    if forward is not None:
        section["forwardProxy"] = {"listen": f"{_host_in_url(forward[0])}:{forward[1]}"}
    return section


# --- whole documents ------------------------------------------------------------------------------------------


@st.composite
def policy_bodies(draw: st.DrawFn, shared_proxies: list[str]) -> dict[str, Any]:
    """The keys of one policy (without name/nodes)."""
    body: dict[str, Any] = {}
    own = draw(st.dictionaries(proxy_names.filter(lambda name: name not in shared_proxies), proxy_specs(), max_size=3))
    if own:
        body["proxies"] = own
    names = [*shared_proxies, *own]
    for key in ("httpProxy", "httpsProxy"):
        choice = draw(st.sampled_from(["none", "url", "name"] if names else ["none", "url"]))
        if choice == "url":
            with_credentials = draw(st.booleans())
            credentials = (draw(usernames), draw(passwords)) if with_credentials else None
            body[key] = draw(proxy_urls(None, credentials))
        elif choice == "name":
            body[key] = draw(st.sampled_from(names))
    if draw(st.booleans()):
        body["noProxy"] = draw(no_proxy_values())
    if draw(st.booleans()):
        body["rules"] = draw(st.lists(rules(names), max_size=4))
    if draw(st.booleans()):
        body["rawTcp"] = draw(st.sampled_from(["tunnel", "direct", "deny"]))
    if draw(st.booleans()):
        has_default = "httpProxy" in body or "httpsProxy" in body
        section = draw(standalone_sections(names, has_default))
        if section:
            body["standalone"] = section
    if not body:
        body["rules"] = [{"action": "direct"}]
    return body


@st.composite
def node_selectors(draw: st.DrawFn) -> dict[str, Any]:
    selector: dict[str, Any] = {}
    if draw(st.booleans()):
        selector["id"] = draw(st.sampled_from(["*", "sidecar-*", "vm-?", "exact-node"]))
    if draw(st.booleans()):
        selector["metadata"] = draw(
            st.dictionaries(
                st.sampled_from(["namespace", "mode", "labels.app"]),
                st.one_of(st.sampled_from(["payments", "standalone", "web"]), st.booleans(), st.integers(0, 9)),
                max_size=2,
            )
        )
    return selector


@st.composite
def _documents(draw: st.DrawFn) -> Document:
    if not draw(st.booleans()):
        return draw(policy_bodies([]))
    shared = draw(st.dictionaries(proxy_names, proxy_specs(), max_size=2))
    document: Document = {}
    if shared:
        document["proxies"] = shared
    names = draw(st.lists(st.from_regex(r"\A[a-z][a-z0-9-]{0,8}[a-z0-9]\Z"), min_size=1, max_size=3, unique=True))
    policies = []
    for name in names:
        policy = {"name": name, **draw(policy_bodies(list(shared)))}
        selector = draw(node_selectors())
        if selector:
            policy["nodes"] = selector
        policies.append(policy)
    document["policies"] = policies
    return document


def valid_policy_documents() -> st.SearchStrategy[Document]:
    """Plain dicts that `check` accepts (load them with `parse_document(LocatedDocument(...))`, or dump them as
    YAML/JSON to a file for `load_policy_file`; `caFile`/`credentialsFile` paths are absolute)."""
    return _documents().map(_unshared)


def _unshared(document: Document) -> Document:
    """A copy without shared sub-objects (`yaml.safe_dump` writes a shared one as an anchor and aliases, which
    policies refuse)."""
    copied: Document = json.loads(json.dumps(document))
    return copied


# --- mutations ------------------------------------------------------------------------------------------------


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def secret_shapes(password: str) -> list[str]:
    """A password in every URL shape, also cut short (with a scheme: without one a cut-short `u:pw` cannot be
    told from `host:port` outside a proxy URL field)."""
    return [
        f"http://alice:{password}@proxy.corp.example:3128",
        f"https://alice:{quote(password, safe='')}@10.0.0.1",
        f"alice:{password}@proxy.corp.example:3128",
        f"{password}@proxy",
        f"http://alice:{password}",
        f"https://alice:{password}@",
    ]


WRONG_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**64,
    10**30,
    1.5,
    float("inf"),
    float("nan"),
    "",
    " ",
    "x" * 2000,
    "*",
    "http://",
    "::",
    "[",
    "10.0.0.0/33",
    "a..b",
    [],
    {},
    [None],
    [[]],
    {"a": 1},
    {"proxy": ["a"]},
    _deep(200),
    {"url": None},
]


@st.composite
def wrong_values(draw: st.DrawFn) -> Any:
    pool = st.one_of(
        st.sampled_from(WRONG_VALUES),
        passwords.flatmap(lambda password: st.sampled_from(secret_shapes(password))),
        plain_text(max_size=30),
        st.integers(),
        st.lists(st.one_of(st.none(), st.integers(), plain_text(max_size=5)), max_size=3),
    )
    return draw(pool)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*path, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], new: Any, operation: str) -> Any:
    if not path:
        return new if operation == "replace" else document
    head, *rest = path
    if isinstance(document, dict):
        copy: Any = dict(document)
    else:
        copy = list(document)
    if rest:
        copy[head] = _replace(copy[head], tuple(rest), new, operation)
    elif operation == "delete":
        del copy[head]
    elif operation == "add" and isinstance(copy, dict):  # an unknown key beside `head`, maybe secret-shaped
        copy[new if isinstance(new, str) else type(new).__name__] = copy[head]
    else:
        copy[head] = new
    return copy


@st.composite
def mutated_policy_documents(draw: st.DrawFn, base: st.SearchStrategy[Document] | None = None) -> Document:
    """A valid document with one to three values replaced, deleted, or a key added."""
    document: Any = draw(base if base is not None else valid_policy_documents())
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths[1:] if len(paths) > 1 else paths))
        operation = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        document = _replace(document, path, draw(wrong_values()), operation)
    return document if isinstance(document, dict) else {"httpProxy": document}
