"""The fake API server answers the real `kubernetes` client the way an API server does (the source's tests rely
on it): JSON patch as well as merge patch on the status subresource, 415 for other patch types, 410 Gone for a
compacted resourceVersion, a watch without a resourceVersion starting with the current objects, create / replace /
patch / delete with their preconditions, paged lists, and the faults a test injects."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, ProtocolError

from egress_xds.sources.kubernetes.api import GROUP, VERSION
from egress_xds.sources.kubernetes.client import ClientSettings, api_client
from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.resources import egress_proxy, secret

CONDITION = {
    "type": "Accepted",
    "status": "True",
    "reason": "Accepted",
    "message": "ok",
    "lastTransitionTime": "2026-01-01T00:00:00Z",
}


@pytest.fixture
def custom(kubeconfig: Path) -> Iterator[client.CustomObjectsApi]:
    api = api_client(ClientSettings(kubeconfig=kubeconfig), {})
    yield client.CustomObjectsApi(api)
    api.close()


def test_status_patches_change_only_the_status(api: FakeApiServer, custom: client.CustomObjectsApi) -> None:
    api.apply(egress_proxy("corp", "shop", httpsProxy="http://10.0.0.1:3128"))
    merge = {"status": {"observedGeneration": 1}, "spec": {"httpsProxy": "http://evil:1"}}
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, "shop", "egressproxies", "corp", merge)
    ops = [{"op": "add", "path": "/status/conditions", "value": [CONDITION]}]
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "shop", "egressproxies", "corp", ops, _content_type="application/json-patch+json"
    )
    stored = api.get("egressproxies", "corp", "shop")
    assert stored is not None
    assert stored["spec"]["httpsProxy"] == "http://10.0.0.1:3128", "a status patch never changes the spec"
    assert stored["status"] == {"observedGeneration": 1, "conditions": [CONDITION]}
    assert stored["metadata"]["generation"] == 1 and stored["metadata"]["resourceVersion"] == "4"
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, "shop", "egressproxies", "corp", {}, _content_type="application/apply-patch+yaml"
        )
    assert caught.value.status == 415


def test_watch_protocol_410_and_initial_events(api: FakeApiServer, custom: client.CustomObjectsApi) -> None:
    api.apply(egress_proxy("corp", "shop", httpsProxy="http://10.0.0.1:3128"))
    api.compact()
    stream = watch.Watch().stream(
        custom.list_cluster_custom_object, GROUP, VERSION, "egressproxies", resource_version="1", timeout_seconds=2
    )
    with pytest.raises(ApiException) as caught:
        next(iter(stream))
    assert caught.value.status == 410
    events = list(
        watch.Watch().stream(custom.list_cluster_custom_object, GROUP, VERSION, "egressproxies", timeout_seconds=1)
    )
    assert [(event["type"], event["raw_object"]["metadata"]["name"]) for event in events] == [("ADDED", "corp")]


def test_create_replace_patch_delete_with_their_preconditions(
    api: FakeApiServer, custom: client.CustomObjectsApi
) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, "shop", "egressproxies", egress_proxy("corp", "shop", httpsProxy="http://10.0.0.1:3128")
    )
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(GROUP, VERSION, "shop", "egressproxies", created)
    assert (caught.value.status, json.loads(caught.value.body)["reason"]) == (409, "AlreadyExists")
    stale = json.loads(json.dumps(created))
    created["spec"]["httpsProxy"] = "http://10.0.0.2:3128"
    replaced = custom.replace_namespaced_custom_object(GROUP, VERSION, "shop", "egressproxies", "corp", created)
    assert replaced["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as caught:  # the resourceVersion precondition of an update
        custom.replace_namespaced_custom_object(GROUP, VERSION, "shop", "egressproxies", "corp", stale)
    assert (caught.value.status, json.loads(caught.value.body)["reason"]) == (409, "Conflict")
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "shop", "egressproxies", "corp", {"spec": {"rawTcp": "deny"}, "status": {"x": 1}}
    )
    assert patched["spec"]["rawTcp"] == "deny" and "status" not in patched, "the resource path ignores .status"
    patched["status"] = {"observedGeneration": 3, "conditions": [CONDITION]}
    patched["spec"]["rawTcp"] = "direct"
    written = custom.replace_namespaced_custom_object_status(GROUP, VERSION, "shop", "egressproxies", "corp", patched)
    assert written["status"]["observedGeneration"] == 3 and written["spec"]["rawTcp"] == "deny", "status only"
    custom.delete_namespaced_custom_object(GROUP, VERSION, "shop", "egressproxies", "corp")
    assert api.get("egressproxies", "corp", "shop") is None


def test_secrets_store_string_data_as_data(api: FakeApiServer) -> None:
    written = secret("creds", "shop", username="alice")
    written["stringData"] = {"password": "pw"}
    stored = api.apply(written)
    assert "stringData" not in stored and set(stored["data"]) == {"username", "password"}


def test_lists_are_paged_from_one_snapshot(api: FakeApiServer, custom: client.CustomObjectsApi) -> None:
    for index in range(5):
        api.apply(egress_proxy(f"p{index}", "shop", httpsProxy="http://10.0.0.1:3128"))
    first = custom.list_cluster_custom_object(GROUP, VERSION, "egressproxies", limit=2)
    assert len(first["items"]) == 2 and first["metadata"]["remainingItemCount"] == 3
    api.apply(egress_proxy("p9", "shop", httpsProxy="http://10.0.0.1:3128"))  # after the snapshot
    rest = custom.list_cluster_custom_object(
        GROUP, VERSION, "egressproxies", limit=10, _continue=first["metadata"]["continue"]
    )
    names = [item["metadata"]["name"] for item in first["items"] + rest["items"]]
    assert names == ["p0", "p1", "p2", "p3", "p4"] and "continue" not in rest["metadata"]
    assert rest["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    again = custom.list_cluster_custom_object(GROUP, VERSION, "egressproxies", limit=2)
    api.compact()
    with pytest.raises(ApiException) as caught:
        custom.list_cluster_custom_object(GROUP, VERSION, "egressproxies", _continue=again["metadata"]["continue"])
    assert (caught.value.status, json.loads(caught.value.body)["reason"]) == (410, "Expired")


def test_injected_faults_answer_then_stop(api: FakeApiServer, custom: client.CustomObjectsApi) -> None:
    api.apply(egress_proxy("corp", "shop", httpsProxy="http://10.0.0.1:3128"))
    fault = api.inject("patch", "/egressproxies/corp/status", 429, times=1, retry_after=3)
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, "shop", "egressproxies", "corp", {})
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "3"
    assert json.loads(caught.value.body)["details"]["retryAfterSeconds"] == 3 and fault.hits == 1
    # urllib3 (under the client) itself retries a GET answered 429 with Retry-After, after that many seconds.
    fault = api.inject("list", "/egressproxies", 429, times=1, retry_after=1)
    started = time.monotonic()
    assert custom.list_cluster_custom_object(GROUP, VERSION, "egressproxies")["items"]
    assert fault.hits == 1 and time.monotonic() - started >= 0.9
    api.inject("get", "/egressproxies/corp", 403)
    with pytest.raises(ApiException) as caught:
        custom.get_namespaced_custom_object(GROUP, VERSION, "shop", "egressproxies", "corp")
    assert caught.value.status == 403 and "cannot get resource" in json.loads(caught.value.body)["message"]
    api.inject("list", "/egressproxies", None, times=4)  # connection resets, more than urllib3 retries
    with pytest.raises((ProtocolError, MaxRetryError)):
        custom.list_cluster_custom_object(GROUP, VERSION, "egressproxies")
    api.inject("watch", "/egressproxies", 410)  # 410 over HTTP, not as an ERROR event
    with pytest.raises(ApiException) as caught:
        next(iter(watch.Watch().stream(custom.list_cluster_custom_object, GROUP, VERSION, "egressproxies",
                                       resource_version="2", timeout_seconds=1)))  # fmt: skip
    assert caught.value.status == 410
