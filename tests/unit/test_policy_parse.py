"""Parsing policy files: the accepted forms, and errors that name file, line and field."""

from __future__ import annotations

import dataclasses
import ipaddress
import textwrap
from pathlib import Path

import pytest

from egress_xds.policy import ConfigError, Deny, Node, RawTcpMode, Scheme, ViaProxy, select_policy
from egress_xds.policy.destinations import DomainPattern
from egress_xds.policy.model import replace_proxies
from egress_xds.policy.parse import parse_document
from egress_xds.policy.proxy_url import basic_credentials
from egress_xds.policy.yaml_tree import LocatedDocument
from egress_xds.sources.environment import policy_from_environment
from egress_xds.sources.file import load_policy_file

GOLDEN_CA = Path(__file__).resolve().parents[1] / "golden" / "in" / "files" / "corp-ca.pem"


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_policy_file(path)
    return [str(issue) for issue in caught.value.issues]


def test_minimal_form_uses_the_istio_field_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        httpProxy: http://proxy.corp.test:3128
        httpsProxy: http://alice:s%40cret@proxy.corp.test:3128
        noProxy: "localhost,.internal,10.0.0.0/8"
        """,
    )
    (policy,) = load_policy_file(path).policies
    assert policy.http_proxy is policy.proxies["http-proxy"]
    assert policy.https_proxy is policy.proxies["https-proxy"]
    https = policy.proxies["https-proxy"]
    assert https.scheme is Scheme.HTTP
    assert (https.endpoints[0].host, https.endpoints[0].port) == ("proxy.corp.test", 3128)
    assert https.credentials is not None
    assert https.credentials.header_value == "Basic YWxpY2U6c0BjcmV0"  # base64("alice:s@cret"), URL-decoded
    assert "s@cret" not in repr(https)  # credentials never show in repr
    assert policy.proxies["http-proxy"].credentials is None
    assert [entry.raw for entry in policy.no_proxy.entries] == ["localhost", ".internal", "10.0.0.0/8"]


def test_a_url_without_port_uses_the_scheme_default(tmp_path: Path) -> None:
    path = write(tmp_path, "httpProxy: http://proxy.corp.test\nhttpsProxy: https://proxy.corp.test\n")
    (policy,) = load_policy_file(path).policies
    assert policy.proxies["http-proxy"].endpoints[0].port == 80
    https = policy.proxies["https-proxy"]
    assert https.endpoints[0].port == 443
    assert https.scheme is Scheme.HTTPS
    assert https.sni == "proxy.corp.test"


def test_the_same_url_for_http_and_https_is_one_proxy(tmp_path: Path) -> None:
    path = write(tmp_path, "httpProxy: http://10.0.0.1:3128\nhttpsProxy: http://10.0.0.1:3128\n")
    (policy,) = load_policy_file(path).policies
    assert policy.http_proxy is policy.https_proxy is policy.proxies["http-proxy"]
    assert list(policy.proxies) == ["http-proxy"]


def test_full_form(tmp_path: Path) -> None:
    (tmp_path / "corp.cred").write_text("bob:hunter2\n")
    (tmp_path / "ca.pem").write_text(GOLDEN_CA.read_text())  # check loads the certificates
    path = write(
        tmp_path,
        """
        proxies:
          corp:
            endpoints:
              - url: https://proxy-a.corp.test:3129
                priority: 0
              - url: https://proxy-b.corp.test:3129
                priority: 1
            credentialsFile: corp.cred
            caFile: ca.pem
            sni: proxy.corp.test
            healthCheck: {interval: 2s, timeout: 500ms, unhealthyThreshold: 3}
          lab: http://10.250.1.2:8888
        httpsProxy: corp
        httpProxy: lab
        noProxy: [direct.example.test, "10.250.2.3"]
        rawTcp: deny
        rules:
          - name: github
            domains: ["*.github.com", "github.com"]
            ports: [443]
            action: {proxy: lab}
          - cidrs: ["192.0.2.0/24"]
            action: direct
          - domains: [".evil.test"]
            action: deny
        nodes:
          id: "sidecar-*"
          metadata: {namespace: payments}
        """,
    )
    (policy,) = load_policy_file(path).policies
    corp = policy.proxies["corp"]
    assert [(e.host, e.priority) for e in corp.endpoints] == [("proxy-a.corp.test", 0), ("proxy-b.corp.test", 1)]
    assert corp.credentials is not None and corp.credentials.username == "bob"
    assert corp.ca_file == str(tmp_path / "ca.pem")
    assert corp.sni == "proxy.corp.test"
    assert corp.health_check is not None
    assert (corp.health_check.interval_ms, corp.health_check.timeout_ms) == (2000, 500)
    assert corp.health_check.unhealthy_threshold == 3
    assert policy.raw_tcp is RawTcpMode.DENY
    github, network, evil = policy.rules
    assert github.domains == (DomainPattern.subdomains_of("github.com"), DomainPattern.exact("github.com"))
    assert github.ports == (443,)
    assert isinstance(github.action, ViaProxy) and github.action.proxy is policy.proxies["lab"]
    assert network.cidrs == (ipaddress.ip_network("192.0.2.0/24"),)
    assert network.name == "rule 2"
    assert isinstance(evil.action, Deny)
    assert evil.domains == (DomainPattern.subdomains_of("evil.test"),)
    assert select_policy(load_policy_file(path), Node("sidecar-1", {"namespace": "payments"})) == policy
    assert select_policy(load_policy_file(path), Node("sidecar-1", {"namespace": "web"})) is None
    assert select_policy(load_policy_file(path), Node("gateway", {"namespace": "payments"})) is None


def test_several_failover_endpoints_get_a_health_check_by_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        proxies:
          corp:
            endpoints: ["http://10.0.0.1:3128", {url: "http://10.0.0.2:3128", priority: 1}]
        httpsProxy: corp
        """,
    )
    (policy,) = load_policy_file(path).policies
    assert policy.proxies["corp"].health_check is not None


def test_credentials_file_with_a_complete_header_value(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("Bearer abc.def\n")
    path = write(
        tmp_path, "proxies:\n  corp: {url: 'http://10.0.0.1:3128', credentialsFile: token}\nhttpsProxy: corp\n"
    )
    (policy,) = load_policy_file(path).policies
    credentials = policy.proxies["corp"].credentials
    assert credentials is not None and credentials.header_value == "Bearer abc.def"


def test_several_policies_chosen_by_node(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        proxies:
          corp: http://10.0.0.1:3128
        policies:
          - name: payments
            nodes: {metadata: {namespace: payments}}
            httpsProxy: corp
            rawTcp: deny
          - name: everyone
            httpsProxy: corp
        """,
    )
    policies = load_policy_file(path)
    assert [p.name for p in policies.policies] == ["payments", "everyone"]
    chosen = select_policy(policies, Node("a", {"namespace": "payments"}))
    assert chosen is not None and chosen.name == "payments"
    fallback = select_policy(policies, Node("a", {"namespace": "web"}))
    assert fallback is not None and fallback.name == "everyone"


def test_json_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, '{"httpsProxy": "http://10.0.0.1:3128", "noProxy": ["a.test"]}', "policy.json")
    (policy,) = load_policy_file(path).policies
    assert policy.https_proxy is policy.proxies["https-proxy"]


BAD_INPUTS = [
    pytest.param("httpsProxy: http://p:3128\nhttpsproxy: x\n", 2, "httpsproxy: unknown key", id="typo-key"),
    pytest.param("httpsProxy: socks5://p:1080\n", 1, "httpsProxy: unsupported scheme 'socks5'", id="bad-scheme"),
    pytest.param("httpsProxy: proxy.corp:3128\n", 1, "'proxy.corp:3128' has no scheme: write http://", id="no-scheme"),
    pytest.param("httpsProxy: corp\n", 1, "'corp' is neither a URL", id="no-such-proxy"),
    pytest.param("httpsProxy: http://p:99999\n", 1, "port 99999 out of range", id="port-range"),
    pytest.param("httpsProxy: http://p:3128/path\n", 1, "no path", id="url-path"),
    pytest.param(
        "httpsProxy: http://p:3128\nrules:\n  - cidrs: [10.0.0.0/33]\n    action: direct\n",
        3,
        "rules[0].cidrs[0]: prefix length 33 out of range 0-32 for IPv4",
        id="bad-cidr",
    ),
    pytest.param(
        "httpsProxy: http://p:3128\nrules:\n  - domains: [a.test]\n    action: {proxy: nope}\n",
        4,
        "rules[0].action.proxy: unknown proxy 'nope' (defined: https-proxy)",
        id="unknown-proxy",
    ),
    pytest.param(
        "httpsProxy: http://p:3128\nrules:\n  - domains: [a.test]\n    action: allow\n",
        4,
        "rules[0].action: expected direct, deny or {proxy: NAME}, got 'allow'",
        id="bad-action",
    ),
    pytest.param(
        "httpsProxy: http://p:3128\nrules:\n  - domains: [a.test]\n    ports: [0]\n    action: deny\n",
        4,
        "rules[0].ports[0]: port 0 out of range",
        id="port-zero",
    ),
    pytest.param(
        "httpsProxy: http://p:3128\nrules:\n  - domains: [a.test]\n    ports: [443.5]\n    action: deny\n",
        4,
        "rules[0].ports[0]: port 443.5 is not a whole number (expected 1-65535)",
        id="port-fraction",
    ),
    pytest.param(
        "httpsProxy: http://p:3128\nrules:\n  - domains: [a.test]\n    ports: [true]\n    action: deny\n",
        4,
        "rules[0].ports[0]: expected a port number 1-65535, not the boolean true",
        id="port-boolean",
    ),
    pytest.param("httpsProxy: http://p:3128\nnoProxy: 'a.test,10.0.0.0/99'\n", 2, "noProxy: entry 1", id="bad-noproxy"),
    pytest.param("httpsProxy: http://p:3128\nhttpsProxy: http://q:3128\n", 2, "duplicate key", id="duplicate-key"),
    pytest.param(
        "proxies:\n  corp: http://a:1\npolicies:\n  - name: x\n    httpsProxy: corp\n"
        "  - name: x\n    httpsProxy: corp\n",
        6,
        "policies[1].name: duplicate policy name 'x'",
        id="duplicate-policy",
    ),
    pytest.param(
        "httpsProxy: http://p:3128\nrawTcp: maybe\n", 2, "rawTcp: expected one of tunnel, direct, deny", id="raw"
    ),
    pytest.param("proxies:\n  Corp_1: http://p:1\n", 2, "proxy name 'Corp_1' must be lower case", id="proxy-name"),
    pytest.param("httpsProxy: [http://p:3128\n", 2, "not valid YAML/JSON", id="yaml-syntax"),
    pytest.param(
        "proxies:\n  corp: {url: 'http://p:1', credentialsFile: missing.cred}\n",
        2,
        "proxies.corp.credentialsFile: cannot read",
        id="missing-credentials-file",
    ),
]


@pytest.mark.parametrize(("text", "line", "expected"), BAD_INPUTS)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = write(tmp_path, text)
    errors = errors_of(path)
    assert any(error.startswith(f"{path}:{line}:") and expected in error for error in errors), errors


def test_every_error_is_reported_not_just_the_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        httpsProxy: http://p:3128
        rules:
          - domains: [a.test]
            action: {proxy: nope}
          - cidrs: [not-a-cidr]
            action: direct
        rawTcp: sometimes
        """,
    )
    errors = errors_of(path)
    assert len(errors) == 3, errors


def test_passwords_never_appear_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "httpsProxy: http://alice:topsecret@p:99999\nrules: 'http://bob:hush@x:1'\n")
    text = "\n".join(errors_of(path))
    assert "topsecret" not in text and "hush" not in text
    assert "out of range" in text


def test_environment_source_prefers_upper_case_and_names_the_variable() -> None:
    policies = policy_from_environment(
        {"HTTPS_PROXY": "http://10.0.0.1:3128", "https_proxy": "http://10.9.9.9:1", "no_proxy": "a.test"}
    )
    (policy,) = policies.policies
    assert policy.proxies["https-proxy"].endpoints[0].host == "10.0.0.1"
    assert [entry.raw for entry in policy.no_proxy.entries] == ["a.test"]
    with pytest.raises(ConfigError) as caught:
        policy_from_environment({"HTTPS_PROXY": "ftp://10.0.0.1"})
    assert "HTTPS_PROXY: unsupported scheme 'ftp'" in str(caught.value)
    with pytest.raises(ConfigError, match="neither HTTP_PROXY nor HTTPS_PROXY"):
        policy_from_environment({})


def test_replace_proxies_reaches_every_reference() -> None:
    """A resolved model holds proxies in several places; replacing one by name must reach all of them."""
    document = {
        "proxies": {"corp": "http://10.0.0.1:3128"},
        "httpProxy": "corp",
        "httpsProxy": "corp",
        "rules": [{"domains": ["a.example"], "action": {"proxy": "corp"}}],
        "standalone": {
            "listeners": [{"name": "api", "listen": "127.0.0.1:10443", "target": "api.example:443"}],
            "forwardProxy": {"listen": "127.0.0.1:3129"},
        },
    }
    (policy,) = parse_document(LocatedDocument("policy.yaml", document)).policies
    new = dataclasses.replace(policy.proxies["corp"], credentials=basic_credentials("u", "p"))
    replaced = replace_proxies(policy, {"corp": new})
    forward = replaced.standalone.forward_proxy
    assert forward is not None
    (rule,) = replaced.rules
    (listener,) = replaced.standalone.listeners
    held = [
        replaced.proxies["corp"],
        replaced.http_proxy,
        replaced.https_proxy,
        forward.http_proxy,
        forward.https_proxy,
    ]
    assert isinstance(rule.action, ViaProxy) and isinstance(listener.action, ViaProxy)
    assert all(proxy is new for proxy in [*held, rule.action.proxy, listener.action.proxy])


def test_a_kubernetes_object_given_as_a_policy_file_is_named_for_what_it_is() -> None:
    """A new user runs `check` on deploy/examples/egressproxy.yaml: "unknown key 'apiVersion'" did not help."""
    example = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "egressproxy.yaml"
    with pytest.raises(ConfigError) as caught:
        load_policy_file(example)
    [issue] = caught.value.issues
    assert issue.path == "kind" and issue.line is not None
    assert "this is a Kubernetes EgressProxy, not a policy file" in issue.message


@pytest.mark.parametrize("field", ["credentialsFile", "caFile"])
def test_a_url_given_as_a_file_name_is_not_quoted_with_its_password(tmp_path: Path, field: str) -> None:
    """Found by tests/unit/test_policy_fuzz.py: `http://alice:S3cret` resolved to `.../http:/alice:S3cret`, and the
    'cannot read' message quoted that path whole."""
    path = write(tmp_path, f"proxies: {{p: {{url: 'https://10.0.0.1:3128', {field}: 'http://alice:Zq9Xw7Kv'}}}}\n")
    (message,) = errors_of(path)
    assert f"proxies.p.{field}: cannot read http://alice:<redacted>: No such file" in message
    assert "Zq9X" not in message
    plain = write(tmp_path, f"proxies: {{p: {{url: 'https://10.0.0.1:3128', {field}: missing.pem}}}}\n", "b.yaml")
    assert f"cannot read {tmp_path / 'missing.pem'}: No such file" in errors_of(plain)[0]


@pytest.mark.parametrize(
    ("userinfo", "part"), [("alice:S3cret%ZZ", "password"), ("al%ice:S3cret", "user name"), ("alice:50%", "password")]
)
def test_a_percent_that_is_no_escape_in_the_credentials_is_refused(tmp_path: Path, userinfo: str, part: str) -> None:
    """Go's url.Parse (curl and Kubernetes tooling alike) refuses `%ZZ`; taking it literally would send credentials
    the user did not mean, and the proxy would answer 407 with no hint why."""
    (message,) = errors_of(write(tmp_path, f"httpsProxy: http://{userinfo}@proxy.corp.test:3128\n"))
    assert f"the URL's {part} has a '%' that is not a %XX escape" in message
    assert "S3cret" not in message and "50%" not in message
    policy = load_policy_file(write(tmp_path, "httpsProxy: http://alice:50%25@proxy.corp.test:3128\n", "ok.yaml"))
    proxy = policy.policies[0].https_proxy
    assert proxy is not None and proxy.credentials is not None


def test_a_fifo_whose_writer_comes_a_little_later_is_read(tmp_path: Path) -> None:
    """`--config <(...)` and named pipes: the reader waits (boundedly) for the writer instead of reading it as empty."""
    import os
    import threading

    fifo = tmp_path / "policy.fifo"
    os.mkfifo(fifo)

    def write_later() -> None:
        threading.Event().wait(0.3)
        fifo.write_text("httpsProxy: http://10.0.0.1:3128\n")

    writer = threading.Thread(target=write_later)
    writer.start()
    try:
        policies = load_policy_file(fifo)
    finally:
        writer.join(10)
    proxy = policies.policies[0].https_proxy
    assert proxy is not None and proxy.endpoints[0].port == 3128
