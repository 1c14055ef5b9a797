"""A policy-option matrix: policies generated all-pairs (pairwise) over the options that change what Envoy gets.

Every pair of values of any two axes (`AXES`) appears in at least one row, except pairs `allowed` rules out (an
http:// proxy has no caFile; a Kubernetes resource has no caFile, standalone section or `policies:`). The generator
is greedy and deterministic for a seed (`all_pairs`); node ids and metadata of awkward shapes are dealt out over
the rows round-robin (`NODE_IDS`, `NODE_METADATA`), so each shape is used at least once.

A `Row` becomes a policy file (`Row.document()`, in the format of README "Policy file reference") or, for the
Secret credential form, an EgressProxy and its Secret (`Row.kubernetes()`), converted by the server's converter.
The node a row is rendered for (`Row.node_id`, `Row.node_metadata`) is the one its policy selects; in a
several-policies row the same body is served once more to every other node (policy `rest`), so any node connected
to a server serving the row gets the row's policy.
"""

from __future__ import annotations

import glob
import itertools
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tests.support.policy_strategies import SECRET_MARK, support_files

AXES: dict[str, tuple[str, ...]] = {
    "scheme": ("http", "https"),
    "ca": ("system", "given"),
    "credentials": ("none", "userinfo", "file-basic", "file-header", "secret"),
    "address": ("ipv4", "ipv6", "hostname"),
    "port": ("explicit", "default"),
    "endpoints": ("one", "two", "three-priorities"),
    "health_check": ("none", "defaults", "custom"),
    "domain_rule": ("none", "exact", "wildcards", "many"),
    "cidr_rule": ("none", "v4", "v6", "mixed"),
    "rule_ports": ("none", "one", "several"),
    "rule_action": ("proxy", "direct", "deny"),
    "raw_tcp": ("tunnel", "direct", "deny"),
    "no_proxy": ("none", "string", "list", "star"),
    "policies": ("one", "several"),
    "standalone": ("none", "listeners", "both"),
}

# Node ids and metadata values a YAML printer or reader may turn into something else, or that a glob treats
# specially; the policy selects the node by its exact id.
NODE_IDS: tuple[str, ...] = (
    "y",
    "no",
    "on",
    "null",
    "1e3",
    "007",
    "*",
    "n",
    "sidecar-1.shop",
    "ünï-cödé-节点",
    "pod-" + "x" * 200,
    "[a]?",
)
NODE_METADATA: tuple[dict[str, str], ...] = (
    {"namespace": "no"},
    {"namespace": "y", "labels.app": "on"},
    {"env": "1e3"},
    {"env": "null", "zone": "~"},
    {"namespace": "0755"},
    {"team": "ünï"},
    {"namespace": "*"},
    {"namespace": "off", "labels.tier": "true"},
)

SECRET_NAMESPACE = "shop"
SECRET_NAME = "corp-proxy"
USERNAME = "svc"
PASSWORD = f"{SECRET_MARK}p@ss:w/rd%"
MANY_DOMAINS = 600  # one rule's domains: a single Host regex of this many is over RE2's program-size limit


def allowed(row: Mapping[str, str]) -> bool:
    """Whether a (partial) row is a policy that can exist; an axis not in `row` is not decided yet."""

    def has(axis: str, value: str) -> bool:
        return row.get(axis) == value

    if has("ca", "given") and has("scheme", "http"):
        return False  # caFile applies to https:// proxies only
    kubernetes_only = has("ca", "given") or row.get("standalone", "none") != "none" or has("policies", "several")
    return not (has("credentials", "secret") and kubernetes_only)  # an EgressProxy: no server files, one policy


def all_pairs(
    axes: Mapping[str, Sequence[str]],
    allowed: Callable[[Mapping[str, str]], bool],
    *,
    seed: int,
    candidates: int = 25,
) -> list[dict[str, str]]:
    """Rows covering every allowed pair of values of two axes: greedy, each row the best of `candidates` tries.

    A try starts from an uncovered pair and gives every other axis (in a shuffled order) the allowed value that
    covers the most uncovered pairs with the values chosen so far, ties broken by the seeded random generator.
    """
    names = list(axes)
    rng = random.Random(seed)
    uncovered = {
        ((a, x), (b, y))
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        for x in axes[a]
        for y in axes[b]
        if allowed({a: x, b: y})
    }

    def pairs_of(row: Mapping[str, str]) -> set[tuple[tuple[str, str], tuple[str, str]]]:
        items = [(name, row[name]) for name in names if name in row]
        return set(itertools.combinations(items, 2))

    rows: list[dict[str, str]] = []
    while uncovered:
        best: dict[str, str] | None = None
        best_gain = -1
        ordered = sorted(uncovered)
        for _ in range(candidates):
            row = _candidate(names, axes, allowed, rng, rng.choice(ordered), uncovered, pairs_of)
            if row is None:
                continue
            gain = len(pairs_of(row) & uncovered)
            if gain > best_gain:
                best, best_gain = row, gain
        if best is None:
            raise AssertionError("no allowed row covers the remaining pairs")
        rows.append(best)
        uncovered -= pairs_of(best)
    return rows


def _candidate(
    names: list[str],
    axes: Mapping[str, Sequence[str]],
    allowed: Callable[[Mapping[str, str]], bool],
    rng: random.Random,
    start: tuple[tuple[str, str], tuple[str, str]],
    uncovered: set[tuple[tuple[str, str], tuple[str, str]]],
    pairs_of: Callable[[Mapping[str, str]], set[tuple[tuple[str, str], tuple[str, str]]]],
) -> dict[str, str] | None:
    row = dict(start)
    rest = [name for name in names if name not in row]
    rng.shuffle(rest)
    for name in rest:
        scored = []
        for value in axes[name]:
            trial = {**row, name: value}
            if allowed(trial):
                scored.append((len(pairs_of(trial) & uncovered), rng.random(), value))
        if not scored:
            return None
        row[name] = max(scored)[2]
    return {name: row[name] for name in names}


# --- a row as a policy ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    index: int
    values: Mapping[str, str]
    node_id: str
    node_metadata: Mapping[str, str]
    ports: tuple[int, int, int]  # listen ports of the standalone section

    def __getitem__(self, axis: str) -> str:
        return self.values[axis]

    @property
    def kubernetes(self) -> bool:
        return self["credentials"] == "secret"

    def describe(self) -> str:
        return f"row {self.index}: " + ", ".join(f"{axis}={value}" for axis, value in self.values.items())

    # -- the proxy -------------------------------------------------------------------------------------------

    def _host(self, position: int) -> str:
        return {
            "ipv4": f"192.0.2.{10 + position}",
            "ipv6": f"[2001:db8::{10 + position:x}]",
            "hostname": f"Proxy-{position}.Corp.Example." if position == 0 else f"proxy-{position}.corp.example",
        }[self["address"]]

    def _url(self, position: int) -> str:
        userinfo = f"{USERNAME}:{quote(PASSWORD, safe='')}@" if self["credentials"] == "userinfo" else ""
        explicit = self["port"] == "explicit" or position > 0  # endpoints differ by host and port
        port = f":{3128 + position}" if explicit else ""
        return f"{self['scheme']}://{userinfo}{self._host(position)}{port}"

    def _proxy(self) -> Any:
        spec: dict[str, Any] = {}
        if self["endpoints"] == "one":
            spec["url"] = self._url(0)
        elif self["endpoints"] == "two":
            spec["endpoints"] = [self._url(0), {"url": self._url(1), "priority": 1}]
        else:
            spec["endpoints"] = [
                {"url": self._url(0), "priority": 0},
                {"url": self._url(1), "priority": 1},
                {"url": self._url(2), "priority": 2},
            ]
        files = support_files()
        if self["credentials"] == "file-basic":
            spec["credentialsFile"] = str(files.credentials_file)
        elif self["credentials"] == "file-header":
            spec["credentialsFile"] = str(files.bearer_file)
        elif self["credentials"] == "secret":
            spec["credentialsSecretRef"] = {"name": SECRET_NAME}
        if self["ca"] == "given":
            spec["caFile"] = str(files.ca_file)
        if self["scheme"] == "https" and self["address"] != "hostname":
            spec["sni"] = "proxy.corp.example"
        if self["health_check"] == "defaults":
            spec["healthCheck"] = {}
        elif self["health_check"] == "custom":
            spec["healthCheck"] = {"interval": "500ms", "timeout": "250ms", "unhealthyThreshold": 3}
            spec["healthCheck"]["healthyThreshold"] = 2
        return spec["url"] if list(spec) == ["url"] else spec

    # -- rules, NO_PROXY, standalone -------------------------------------------------------------------------

    def _rules(self) -> list[dict[str, Any]]:
        actions: list[Any] = [{"proxy": "corp"}, "direct", "deny"]
        first = ["proxy", "direct", "deny"].index(self["rule_action"])
        ports = {"none": [], "one": [443], "several": [80, 8080, 5432]}[self["rule_ports"]]
        domains = {
            "none": [],
            "exact": ["api.example.com", "Ünïcode.example"],
            "wildcards": ["*.example.org", ".example.net", "partner.example.", "*.a.b.c.example"],
            "many": [f"*.h{index}.a-longer-domain-name.example" for index in range(MANY_DOMAINS)],
        }[self["domain_rule"]]
        cidrs = {
            "none": [],
            "v4": ["198.51.100.0/24"],
            "v6": ["2001:db8:1::/48"],
            "mixed": ["203.0.113.7", "2001:db8:2::1", "10.1.2.3/8", "::ffff:192.0.2.0/120"],
        }[self["cidr_rule"]]
        rules: list[dict[str, Any]] = []
        if domains:
            rules.append({"name": "domains", "domains": domains, "ports": ports, "action": actions[first]})
        if cidrs:
            rules.append({"cidrs": cidrs, "action": actions[(first + 1) % 3], **({"ports": ports} if ports else {})})
        if not rules and ports:
            rules.append({"name": "ports only", "ports": ports, "action": actions[first]})
        if self["rule_action"] == "deny":
            rules.append({"name": "everything else on 25", "ports": [25], "action": "deny"})
        return rules

    def _no_proxy(self) -> Any:
        return {
            "none": None,
            "string": "localhost,.svc,.cluster.local,10.0.0.0/8, db.example.com:5432",
            "list": ["example.com", "*.internal", "192.0.2.99", "[2001:db8::99]", "fd00::/8", "[2001:db8::98]:8443"],
            "star": "*",
        }[self["no_proxy"]]

    def _standalone(self) -> dict[str, Any] | None:
        if self["standalone"] == "none":
            return None
        tunnel, direct, forward = self.ports
        section: dict[str, Any] = {
            "listeners": [
                {"name": "github", "listen": f"127.0.0.1:{tunnel}", "target": "api.github.com:443"},
                {"name": "db", "listen": f"[::1]:{direct}", "target": "[2001:db8::5]:5432", "action": "direct"},
            ]
        }
        if self["standalone"] == "both":
            section["forwardProxy"] = {"listen": f"127.0.0.1:{forward}"}
        return section

    def _body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"httpProxy": "corp", "httpsProxy": "corp"}
        if (no_proxy := self._no_proxy()) is not None:
            body["noProxy"] = no_proxy
        if rules := self._rules():
            body["rules"] = rules
        if self["raw_tcp"] != "tunnel" or self.index % 2:
            body["rawTcp"] = self["raw_tcp"]
        if (standalone := self._standalone()) is not None:
            body["standalone"] = standalone
        return body

    def selector(self) -> dict[str, Any]:
        """The `nodes` selector of the row's policy: exactly its node id, and its first metadata entry."""
        key, value = next(iter(self.node_metadata.items()))
        return {"id": glob.escape(self.node_id), "metadata": {key: value}}

    def document(self) -> dict[str, Any]:
        """The policy file of a row that is not a Kubernetes resource."""
        assert not self.kubernetes, self.describe()
        proxies = {"corp": self._proxy()}
        if self["policies"] == "one":
            return _unshared({"proxies": proxies, **self._body()})
        decoy = {"name": "decoy", "nodes": {"id": "decoy-*"}, "rules": [{"action": "deny"}]}
        main = {"name": "main", "nodes": self.selector(), **self._body()}
        return _unshared({"proxies": proxies, "policies": [decoy, main, {"name": "rest", **self._body()}]})

    def kubernetes_resources(self) -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
        """The EgressProxy of a Secret row (in the CRD's form, which the API server admits), and the Secrets it
        names (their `stringData`)."""
        assert self.kubernetes, self.describe()
        body = self._body()
        for rule in body.get("rules", []):
            if isinstance(rule["action"], dict):  # the CRD's form of {proxy: NAME}
                rule["proxy"] = rule["action"]["proxy"]
                rule["action"] = "proxy"
        if isinstance(body.get("noProxy"), str):  # the CRD's noProxy is a list (an item may hold several entries)
            body["noProxy"] = [body["noProxy"]]
        proxy = self._proxy()
        proxy = {"url": proxy} if isinstance(proxy, str) else proxy  # the CRD's proxies and endpoints are objects
        if "endpoints" in proxy:
            proxy["endpoints"] = [{"url": item} if isinstance(item, str) else item for item in proxy["endpoints"]]
        resource = {
            "apiVersion": "egress.egress-xds.dev/v1alpha1",
            "kind": "EgressProxy",
            "metadata": {"name": f"matrix-{self.index}", "namespace": SECRET_NAMESPACE},
            "spec": {"proxies": {"corp": proxy}, **body},
        }
        if self.index % 2:  # the header form of a Secret
            data = {"proxyAuthorization": f"Bearer {SECRET_MARK}-k8s-token"}
        else:
            data = {"username": USERNAME, "password": PASSWORD}
        return _unshared(resource), {(SECRET_NAMESPACE, SECRET_NAME): {"stringData": data}}


def _unshared(document: dict[str, Any]) -> dict[str, Any]:
    """A copy without shared sub-objects (`yaml.safe_dump` would write anchors and aliases, which policies refuse)."""
    copied: dict[str, Any] = json.loads(json.dumps(document))
    return copied


def matrix(seed: int = 16, ports: tuple[int, int, int] = (10400, 15400, 13100)) -> list[Row]:
    """The rows of the matrix for `seed`. Row N's standalone listeners listen on `ports` + N: from one row to the
    next, a listener keeps its name and changes its address (what editing a listen port does)."""
    rows = all_pairs(AXES, allowed, seed=seed)
    return [
        Row(
            index,
            values,
            NODE_IDS[index % len(NODE_IDS)],
            NODE_METADATA[index % len(NODE_METADATA)],
            (ports[0] + index, ports[1] + index, ports[2] + index),
        )
        for index, values in enumerate(rows)
    ]
