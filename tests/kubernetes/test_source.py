"""`KubernetesSource` through the real `kubernetes` client against the protocol-faithful fake API server.

Each test changes the "cluster" the way kubectl would (objects in the fake server) and waits, bounded, for the
policy a pod would get. Nothing of the client is mocked: lists, chunked watches, bookmarks, 410 Gone, dropped
connections and status PATCHes all cross a real socket.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest
import trustme

from egress_xds.policy.node import Node, select_policy
from egress_xds.policy.proxy_url import basic_credentials
from egress_xds.sources.kubernetes.api import CREDENTIALS_LABEL
from egress_xds.sources.kubernetes.client import ClientSettings
from egress_xds.sources.kubernetes.source import KubernetesOptions, KubernetesSource
from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.conftest import FAST_WATCH, StartSource, eventually
from tests.kubernetes.resources import cluster_egress_proxy, egress_proxy, secret

PROXY_A = "http://10.250.9.1:3128"
PROXY_B = "http://10.250.9.2:3128"


def accepted(api: FakeApiServer, name: str, namespace: str = "", plural: str = "egressproxies") -> dict[str, object]:
    """The Accepted condition the server wrote, or {}."""
    obj = api.get(plural, name, namespace) or {}
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Accepted":
            return dict(condition)
    return {}


async def test_create_update_delete_follow_the_resource(api: FakeApiServer, start_source: StartSource) -> None:
    running = await start_source()
    assert running.proxy_of("payments") is None  # nothing yet: the pod gets no policy
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_A))
    await eventually(lambda: running.proxy_of("payments") == "10.250.9.1:3128", "the created resource")
    assert running.proxy_of("other") is None, "an EgressProxy applies only in its own namespace"
    assert running.proxy_of() is None, "and not to a node that names no namespace"
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_B))
    await eventually(lambda: running.proxy_of("payments") == "10.250.9.2:3128", "the updated resource")
    await eventually(lambda: accepted(api, "corp", "payments").get("observedGeneration") == 2, "Accepted gen 2")
    api.delete("egressproxies", "corp", "payments")
    await eventually(lambda: running.proxy_of("payments") is None, "the deletion")
    assert running.published, "every change went through on_policies"


async def test_workload_selector_changes_move_pods(api: FakeApiServer, start_source: StartSource) -> None:
    api.apply(egress_proxy("default", "shop", httpsProxy=PROXY_A))
    api.apply(egress_proxy("web", "shop", httpsProxy=PROXY_B, workloadSelector={"matchLabels": {"app": "web"}}))
    running = await start_source()
    assert running.proxy_of("shop", app="web") == "10.250.9.2:3128", "a selecting resource beats the default"
    assert running.proxy_of("shop", app="db") == "10.250.9.1:3128", "other pods get the namespace default"
    selector = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}
    api.apply(egress_proxy("web", "shop", httpsProxy=PROXY_B, workloadSelector=selector))
    await eventually(lambda: running.proxy_of("shop", app="db") == "10.250.9.2:3128", "db now selected")
    assert running.proxy_of("shop", app="web") == "10.250.9.1:3128", "web fell back to the namespace default"


async def test_precedence_namespace_then_cluster_defaults(api: FakeApiServer, start_source: StartSource) -> None:
    api.apply(cluster_egress_proxy("everyone", httpsProxy="http://10.250.9.3:3128"))
    api.apply(
        cluster_egress_proxy(
            "batch", httpsProxy="http://10.250.9.4:3128", workloadSelector={"matchLabels": {"tier": "batch"}}
        )
    )
    api.apply(egress_proxy("ns-default", "payments", httpsProxy=PROXY_A))
    running = await start_source()
    assert running.proxy_of("payments", tier="batch") == "10.250.9.1:3128", "namespace default beats cluster"
    assert running.proxy_of("shop", tier="batch") == "10.250.9.4:3128", "cluster selector beats cluster default"
    assert running.proxy_of("shop") == "10.250.9.3:3128", "cluster default for the rest"
    assert running.proxy_of() is None, "a node without a namespace (a VM, a standalone Envoy) is not a pod"
    api.delete("egressproxies", "ns-default", "payments")
    await eventually(lambda: running.proxy_of("payments", tier="batch") == "10.250.9.4:3128", "fallback to cluster")


async def test_oldest_of_two_overlapping_resources_wins(api: FakeApiServer, start_source: StartSource) -> None:
    api.apply(egress_proxy("zz-old", "shop", httpsProxy=PROXY_A, workloadSelector={"matchLabels": {"app": "web"}}))
    api.apply(egress_proxy("aa-new", "shop", httpsProxy=PROXY_B, workloadSelector={"matchLabels": {"app": "web"}}))
    running = await start_source()
    assert running.proxy_of("shop", app="web") == "10.250.9.1:3128"


async def test_a_service_accounts_resource_goes_before_an_older_namespace_default(
    api: FakeApiServer, start_source: StartSource
) -> None:
    """`serviceAccounts` narrows a resource like a `workloadSelector`: it is not shadowed by the default."""
    api.apply(egress_proxy("default", "shop", httpsProxy=PROXY_A))
    api.apply(egress_proxy("checkout", "shop", httpsProxy=PROXY_B, serviceAccounts=["checkout"]))
    running = await start_source()

    def proxy_for(service_account: str) -> str:
        policy = select_policy(
            running.source.policies, Node("p", {"namespace": "shop", "serviceAccount": service_account})
        )
        assert policy is not None and policy.https_proxy is not None
        return str(policy.https_proxy.endpoints[0])

    assert proxy_for("checkout") == "10.250.9.2:3128"
    assert proxy_for("web") == "10.250.9.1:3128"


async def test_secret_rotation_updates_credentials(api: FakeApiServer, start_source: StartSource) -> None:
    api.apply(secret("proxy-creds", "payments", username="alice", password="first-password"))
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_A, credentialsSecretRef={"name": "proxy-creds"}))
    running = await start_source()
    assert running.header_of("payments") == basic_credentials("alice", "first-password").header_value
    api.apply(secret("proxy-creds", "payments", username="alice", password="rotated-password"))
    rotated = basic_credentials("alice", "rotated-password").header_value
    await eventually(lambda: running.header_of("payments") == rotated, "the rotated password")
    api.apply(secret("proxy-creds", "payments", proxyAuthorization="Bearer token-2"))
    await eventually(lambda: running.header_of("payments") == "Bearer token-2", "a full Proxy-Authorization value")


async def test_per_proxy_secret_and_unlabelled_secret(api: FakeApiServer, start_source: StartSource) -> None:
    api.apply(secret("corp", "payments", username="corp-user", password="pw1"))
    api.apply(secret("partner", "payments", labelled=False, username="partner-user", password="pw2"))
    spec = {
        "httpsProxy": "corp",
        "credentialsSecretRef": {"name": "corp"},
        "proxies": {"corp": {"url": PROXY_A}, "partner": {"url": PROXY_B, "credentialsSecretRef": {"name": "partner"}}},
        "rules": [{"name": "partner", "domains": ["api.partner.example"], "action": "proxy", "proxy": "partner"}],
    }
    api.apply(egress_proxy("mixed", "payments", **spec))
    running = await start_source()
    await eventually(lambda: accepted(api, "mixed", "payments").get("reason") == "Invalid", "Invalid status")
    message = str(accepted(api, "mixed", "payments")["message"])
    assert "Secret payments/partner not found" in message and f"{CREDENTIALS_LABEL}=true" in message
    assert running.policy_for("payments") is None, "never valid: nothing served from it"
    labelled = secret("partner", "payments", username="partner-user", password="pw2")
    api.apply(labelled)
    await eventually(lambda: accepted(api, "mixed", "payments").get("reason") == "Accepted", "Accepted once labelled")
    policy = running.policy_for("payments")
    assert policy is not None
    partner = policy.proxies["partner"].credentials
    assert partner is not None and partner.username == "partner-user"
    corp = policy.proxies["corp"].credentials
    assert corp is not None and corp.username == "corp-user"


async def test_invalid_update_keeps_last_good_and_reports(
    api: FakeApiServer, start_source: StartSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    api.apply(secret("creds", "payments", username="alice", password="s3cret-value"))
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_A, credentialsSecretRef={"name": "creds"}))
    running = await start_source()
    await eventually(lambda: accepted(api, "corp", "payments").get("status") == "True", "Accepted")
    # What the CRD admits but the server refuses (a proxy name never defined, a bad CIDR, a rule naming a missing
    # proxy), and a URL with credentials pasted where the CRD checks nothing (noProxy items are free text).
    bad = {
        "httpsProxy": "nowhere",
        "noProxy": ["10.0.0.0/33", "http://bob:hunter2@10.250.9.2:3128"],
        "rules": [{"domains": ["api.example"], "action": "proxy", "proxy": "missing"}],
    }
    api.apply(egress_proxy("corp", "payments", credentialsSecretRef={"name": "creds"}, **bad))
    await eventually(lambda: accepted(api, "corp", "payments").get("status") == "False", "Invalid")
    condition = accepted(api, "corp", "payments")
    assert condition["reason"] == "Invalid" and condition["observedGeneration"] == 2
    message = str(condition["message"])
    for field in (
        "spec.httpsProxy",
        "spec.noProxy[0]",
        "spec.noProxy[1]",
        "spec.rules[0]",
        "still serving generation 1",
    ):
        assert field in message, message
    assert running.proxy_of("payments") == "10.250.9.1:3128", "the last good policy still applies"
    api.delete("secrets", "creds", "payments")
    await eventually(lambda: "Secret payments/creds not found" in str(accepted(api, "corp", "payments")), "no Secret")
    # Secrets and EgressProxies are separate watches: only once the deletion was seen is the next spec known to
    # be judged without the Secret.
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_B, credentialsSecretRef={"name": "creds"}))
    await eventually(lambda: accepted(api, "corp", "payments").get("observedGeneration") == 3, "gen 3 judged")
    assert accepted(api, "corp", "payments")["status"] == "False"
    assert running.proxy_of("payments") == "10.250.9.1:3128", "a valid spec without its Secret is not served"
    api.apply(secret("creds", "payments", username="alice", password="s3cret-value"))
    await eventually(lambda: running.proxy_of("payments") == "10.250.9.2:3128", "the fixed resource")
    await eventually(lambda: accepted(api, "corp", "payments").get("status") == "True", "Accepted gen 3")
    everything = caplog.text + str([request.body for request in api.requests])
    for secret_text in ("hunter2", "s3cret-value", "YWxpY2U6czNjcmV0LXZhbHVl"):
        assert secret_text not in everything, f"{secret_text} leaked into a log or a status"


async def test_status_is_written_once_per_verdict(api: FakeApiServer, start_source: StartSource) -> None:
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_A))
    await start_source()
    await eventually(lambda: accepted(api, "corp", "payments"), "Accepted")
    assert api.requests_for("PATCH", "/status")[0].headers["content-type"] == "application/merge-patch+json"
    for index in range(3):  # reconciles with nothing new to say about corp
        api.apply(secret(f"unrelated-{index}", "payments", username="u", password="p"))
    api.apply(egress_proxy("other", "payments", httpsProxy=PROXY_B))
    await eventually(lambda: accepted(api, "other", "payments"), "the second resource's status")
    await asyncio.sleep(0.3)  # room for a write that should not happen
    patched = [request.path.split("/")[-2] for request in api.requests_for("PATCH", "/status")]
    assert patched == ["corp", "other"], "one write per verdict: our own writes must not cause more"


async def test_410_gone_relists_and_catches_up(api: FakeApiServer, start_source: StartSource) -> None:
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_A))
    running = await start_source()
    lists_before = [watcher.lists for watcher in running.source.watchers]
    # Changes the watch will never see as events: history is compacted, then the open watches expire.
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_B))
    api.apply(egress_proxy("gone-soon", "shop", httpsProxy=PROXY_A))
    api.delete("egressproxies", "gone-soon", "shop")
    api.compact()
    api.expire_watches()
    await eventually(
        lambda: all(w.lists > n for w, n in zip(running.source.watchers, lists_before, strict=True)), "a relist"
    )
    await eventually(lambda: running.proxy_of("payments") == "10.250.9.2:3128", "state after the relist")
    assert running.proxy_of("shop") is None
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_A))
    await eventually(lambda: running.proxy_of("payments") == "10.250.9.1:3128", "watching again after the relist")


async def test_dropped_connections_resume_from_the_last_version(api: FakeApiServer, start_source: StartSource) -> None:
    running = await start_source()
    lists_before = [watcher.lists for watcher in running.source.watchers]
    await eventually(lambda: api.open_watches() == 3, "three open watches")
    api.drop_watches()
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_A))  # while the watches are down
    await eventually(lambda: running.proxy_of("payments") == "10.250.9.1:3128", "the change made while cut off")
    assert [watcher.lists for watcher in running.source.watchers] == lists_before, "resumed, not relisted"
    watches = api.requests_for("GET", "/egressproxies")
    assert watches[-1].query["resourceVersion"] != "0" and watches[-1].query["allowWatchBookmarks"] == "true"


async def test_bookmarks_advance_the_resume_point(api: FakeApiServer, start_source: StartSource) -> None:
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_A))
    running = await start_source()
    for index in range(5):  # Secrets move the global resourceVersion; the EgressProxy watch sees only bookmarks
        api.apply(secret(f"s{index}", "payments", username="u", password="p"))
    version = api.resource_version
    await eventually(lambda: api.open_watches("egressproxies") == 1, "the watch")
    await asyncio.sleep(api.bookmark_interval * 3)
    api.drop_watches()
    await eventually(
        lambda: any(
            r.query.get("watch") == "true" and int(r.query["resourceVersion"]) >= version
            for r in api.requests_for("GET", "/egressproxies")
        ),
        "a rewatch from the bookmarked version",
    )
    assert running.proxy_of("payments") == "10.250.9.1:3128"


@pytest.mark.parametrize("compacted", [False, True], ids=["resume", "compacted-relist"])
async def test_api_server_restart(api: FakeApiServer, start_source: StartSource, compacted: bool) -> None:
    api.apply(secret("creds", "payments", username="alice", password="one"))
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_A, credentialsSecretRef={"name": "creds"}))
    running = await start_source()
    api.stop()
    await asyncio.sleep(0.5)  # the watchers see refused connections and back off
    api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_B, credentialsSecretRef={"name": "creds"}))
    api.apply(secret("creds", "payments", username="alice", password="two"))
    if compacted:
        api.compact()
    assert running.proxy_of("payments") == "10.250.9.1:3128", "nothing changes while the API server is down"
    api.start()
    await eventually(lambda: running.proxy_of("payments") == "10.250.9.2:3128", "the change made while down")
    await eventually(lambda: running.header_of("payments") == basic_credentials("alice", "two").header_value, "creds")
    relisted = any(watcher.lists > 1 for watcher in running.source.watchers)
    assert relisted == compacted


async def test_in_cluster_config_with_tls_and_token(tmp_path: Path) -> None:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("in-cluster-token")
    authority.cert_pem.write_to_path(str(account / "ca.crt"))
    with FakeApiServer(token="in-cluster-token", tls=context) as api:
        api.apply(egress_proxy("corp", "payments", httpsProxy=PROXY_A))
        environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)}
        options = KubernetesOptions(client=ClientSettings(service_account_dir=account), watch=FAST_WATCH)
        source = KubernetesSource(options, lambda policies: None, environ=environ)
        try:
            policies = await asyncio.wait_for(source.start(), 10)
        finally:
            await source.stop()
    assert [policy.name for policy in policies.policies] == ["egressproxy/payments/corp"]
    assert api.requests[0].headers["authorization"] == "bearer in-cluster-token"
