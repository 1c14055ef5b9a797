"""The fake API server answers the real `kubernetes` client the way an API server does (the source's tests rely
on it): JSON patch as well as merge patch on the status subresource, 415 for other patch types, 410 Gone for a
compacted resourceVersion, and a watch without a resourceVersion starting with the current objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from egress_xds.sources.kubernetes.api import GROUP, VERSION
from egress_xds.sources.kubernetes.client import ClientSettings, api_client
from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.resources import egress_proxy


@pytest.fixture
def custom(kubeconfig: Path) -> Iterator[client.CustomObjectsApi]:
    api = api_client(ClientSettings(kubeconfig=kubeconfig), {})
    yield client.CustomObjectsApi(api)
    api.close()


def test_status_patches_change_only_the_status(api: FakeApiServer, custom: client.CustomObjectsApi) -> None:
    api.apply(egress_proxy("corp", "shop", httpsProxy="http://10.0.0.1:3128"))
    merge = {"status": {"observedGeneration": 1}, "spec": {"httpsProxy": "http://evil:1"}}
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, "shop", "egressproxies", "corp", merge)
    ops = [{"op": "add", "path": "/status/conditions", "value": [{"type": "Accepted", "status": "True"}]}]
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "shop", "egressproxies", "corp", ops, _content_type="application/json-patch+json"
    )
    stored = api.get("egressproxies", "corp", "shop")
    assert stored is not None
    assert stored["spec"]["httpsProxy"] == "http://10.0.0.1:3128", "a status patch never changes the spec"
    assert stored["status"] == {"observedGeneration": 1, "conditions": [{"type": "Accepted", "status": "True"}]}
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
