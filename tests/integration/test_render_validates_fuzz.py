"""Property: a policy that `check` accepts renders (`render --static`) into a bootstrap the real Envoy accepts,
for a sidecar and for a standalone node.

Policies come from `tests.support.policy_strategies.valid_policy_documents()` when that module exists, else from
the small local strategy below. The policy is loaded with the loader `check` uses (`load_policy_file`); every
policy of the file is translated for both modes and handed to `envoy --mode validate` (the two validations of one
example run in parallel).
"""

from __future__ import annotations

import importlib
import ipaddress
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress_xds.policy.errors import ConfigError
from egress_xds.policy.node import NodeMode
from egress_xds.sources.file import load_policy_file
from egress_xds.translate import translate
from egress_xds.translate.bootstrap import static_bootstrap
from tests.support.envoy import validate_config

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

NAMES = st.from_regex(r"[a-z][a-z0-9]{0,6}(\.[a-z][a-z0-9]{0,6}){1,2}", fullmatch=True)
PORTS = st.integers(min_value=1, max_value=65535)
IPV4 = st.ip_addresses(v=4).map(str)
CIDRS = st.builds(
    lambda ip, prefix: str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False)),
    st.ip_addresses(v=4),
    st.integers(min_value=8, max_value=32),
) | st.builds(
    lambda ip, prefix: str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False)),
    st.ip_addresses(v=6),
    st.integers(min_value=16, max_value=128),
)


@st.composite
def proxy_url(draw: st.DrawFn, scheme: str | None = None) -> str:
    scheme = scheme or draw(st.sampled_from(["http", "https"]))
    host = draw(NAMES | IPV4)
    auth = draw(st.sampled_from(["", "user:secret@", "a%40b:p%3Ass@"]))
    return f"{scheme}://{auth}{host}:{draw(PORTS)}"


@st.composite
def proxy_entry(draw: st.DrawFn) -> Any:
    scheme = draw(st.sampled_from(["http", "https"]))
    form = draw(st.sampled_from(["url", "object", "endpoints"]))
    if form == "url":
        return draw(proxy_url(scheme))
    if form == "object":
        entry: dict[str, Any] = {"url": draw(proxy_url(scheme))}
    else:
        endpoints = draw(
            st.lists(
                st.builds(lambda h, p: f"{scheme}://{h}:{p}", NAMES | IPV4, PORTS), min_size=1, max_size=3, unique=True
            )
        )
        priorities = draw(st.lists(st.integers(0, 3), min_size=len(endpoints), max_size=len(endpoints)))
        entry = {"endpoints": [{"url": url, "priority": prio} for url, prio in zip(endpoints, priorities, strict=True)]}
    if scheme == "https" and draw(st.booleans()):
        entry["sni"] = draw(NAMES)
    if draw(st.booleans()):
        entry["healthCheck"] = {"interval": f"{draw(st.integers(100, 5000))}ms", "timeout": "1s"}
    return entry


def no_proxy_entries() -> st.SearchStrategy[str]:
    return st.one_of(
        NAMES,
        NAMES.map(lambda name: f".{name}"),
        NAMES.map(lambda name: f"*.{name}"),
        IPV4,
        CIDRS,
        st.builds(lambda name, port: f"{name}:{port}", NAMES, PORTS),
    )


@st.composite
def local_valid_policy_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A small strategy of valid policy documents (used when tests/support/policy_strategies.py is absent)."""
    names = draw(st.lists(st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True), unique=True, max_size=3))
    proxies = {name: draw(proxy_entry()) for name in names}
    document: dict[str, Any] = {}
    if proxies:
        document["proxies"] = proxies
    choices = st.sampled_from(names) | proxy_url() if names else proxy_url()
    for key in ("httpProxy", "httpsProxy"):
        if draw(st.booleans()):
            document[key] = draw(choices)
    if draw(st.booleans()):
        document["noProxy"] = draw(st.lists(no_proxy_entries(), max_size=6))
    actions: list[Any] = ["direct", "deny", *({"proxy": name} for name in names)]
    rules = []
    for _ in range(draw(st.integers(0, 4))):
        rule: dict[str, Any] = {"action": draw(st.sampled_from(actions))}
        if draw(st.booleans()):
            rule["domains"] = draw(st.lists(NAMES | NAMES.map(lambda n: f"*.{n}"), min_size=1, max_size=3))
        if draw(st.booleans()):
            rule["cidrs"] = draw(st.lists(CIDRS, min_size=1, max_size=2))
        if draw(st.booleans()):
            rule["ports"] = draw(st.lists(PORTS, min_size=1, max_size=3, unique=True))
        rules.append(rule)
    if rules:
        document["rules"] = rules
    if not any(key in document for key in ("httpProxy", "httpsProxy", "proxies", "rules")):
        document["httpsProxy"] = draw(proxy_url())
    document["rawTcp"] = draw(st.sampled_from(["tunnel", "direct", "deny"]))
    ports = draw(st.lists(st.integers(10000, 60000), unique=True, max_size=3))
    standalone: dict[str, Any] = {}
    if ports[1:] and "httpsProxy" in document:  # a listener's action defaults to httpsProxy
        standalone["listeners"] = [
            {"name": f"l{index}", "listen": f"127.0.0.1:{port}", "target": f"{draw(NAMES | IPV4)}:{draw(PORTS)}"}
            for index, port in enumerate(ports[1:])
        ]
    if ports and ("httpProxy" in document or "httpsProxy" in document):  # it needs a default proxy
        standalone["forwardProxy"] = {"listen": f"127.0.0.1:{ports[0]}"}
    if standalone:
        document["standalone"] = standalone
    return document


def policy_documents() -> st.SearchStrategy[Any]:
    try:
        module = importlib.import_module("tests.support.policy_strategies")
    except ImportError:
        return local_valid_policy_documents()
    strategy: Callable[[], st.SearchStrategy[Any]] = module.valid_policy_documents
    return strategy()


def as_text(document: Any) -> str:
    return document if isinstance(document, str) else json.dumps(document, indent=1)


# Each example runs two `envoy --mode validate` (0.3-1 s each), so the CI profile's 100 examples would take minutes:
# 15 keeps this module within its time budget. `--hypothesis-profile=long` does not raise an explicit setting, so
# a long run is `pytest ... --hypothesis-seed=N` repeated, or this number raised locally.
@settings(max_examples=15)
@given(document=policy_documents())
def test_an_accepted_policy_renders_into_a_bootstrap_envoy_accepts(document: Any, tmp_path_factory: Any) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz-policy")) / "policy.yaml"
    path.write_text(as_text(document))
    try:
        policies = load_policy_file(path)
    except ConfigError as error:  # not accepted by `check`: nothing is promised
        pytest.fail(f"the strategy made a policy `check` rejects:\n{path.read_text()}\n{error}")
    bootstraps = [
        (f"{policy.name} {mode.value}", static_bootstrap(translate(policy, mode), node_id=f"fuzz-{mode.value}"))
        for policy in policies.policies
        for mode in NodeMode
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda item: validate_config(item[1]), bootstraps))
    for (what, _), result in zip(bootstraps, results, strict=True):
        assert result.returncode == 0, f"{what}: envoy rejects the render of\n{path.read_text()}\n{result.stderr}"
