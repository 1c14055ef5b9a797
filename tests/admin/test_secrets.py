"""Proxy credentials never leave the server through the debug side: CSDS, the admin API, logs, metrics.

Here with real translated resources and raw xDS clients in-process; tests/admin/test_envoy_status.py repeats the
check end to end with a real Envoy, grpcurl, `egress-xds status` and the serve log.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path

import pytest
from envoy.service.status.v3.csds_pb2 import ClientStatusRequest
from google.protobuf.json_format import MessageToJson
from prometheus_client import REGISTRY, generate_latest

from egress_xds.admin.redact_resources import redacted_any
from egress_xds.admin.v1 import admin_pb2
from egress_xds.logs import JsonFormatter, SecretFilter
from egress_xds.policy.model import PolicySet
from egress_xds.policy.node import NodeMode, PolicyGroup
from egress_xds.publish import PolicyPublisher
from egress_xds.scrub import SecretScrubber
from egress_xds.sources.file import load_policy_file
from egress_xds.translate import translate
from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.type_urls import LISTENER_TYPE_URL as LDS
from egress_xds.xds.snapshot import Snapshot
from tests.admin.conftest import Debug
from tests.support.egress import write_policy
from tests.xds.client import eventually

USER, PASSWORD = "alice", "s3cr3t-Pa55"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
FORBIDDEN = (PASSWORD, TOKEN, f"{USER}:{PASSWORD}")
POLICY = f"""
httpsProxy: http://{USER}:{PASSWORD}@proxy.corp.test:3128
httpProxy: http://{USER}:{PASSWORD}@proxy.corp.test:3128
standalone:
  listeners:
    - {{name: github, listen: "127.0.0.1:10443", target: "api.github.com:443"}}
  forwardProxy: {{listen: "127.0.0.1:3129"}}
"""


def assert_clean(text: str, where: str) -> None:
    leaked = [secret for secret in FORBIDDEN if secret in text]
    assert not leaked, f"{where} shows {leaked}"


@pytest.fixture
def policy_set(tmp_path: Path) -> PolicySet:
    return load_policy_file(write_policy(tmp_path, POLICY))


def test_redacted_resources_keep_everything_but_the_header_value(policy_set: PolicySet) -> None:
    resources = translate(policy_set.policies[0], NodeMode.STANDALONE)
    snap = Snapshot(resources.by_type_url())
    for resource in [*snap.resources(LDS).resources.values(), *snap.resources(CDS).resources.values()]:
        original = MessageToJson(resource.packed)
        redacted = MessageToJson(redacted_any(resource))
        assert_clean(redacted, resource.name)
        if TOKEN in original:  # both listeners carry Proxy-Authorization (tunnel and forward proxy)
            assert redacted == original.replace(f"Basic {TOKEN}", "<redacted>"), resource.name
    assert TOKEN in str(snap.resources(LDS).resources["egress-listener-github"].packed)  # Envoy does get it


def test_scrubber_removes_known_credentials_and_credential_shaped_text(policy_set: PolicySet) -> None:
    scrubber = SecretScrubber(lambda: policy_set)
    nack = f'header {{ key: "Proxy-Authorization" value: "Basic {TOKEN}" }} and {USER}:{PASSWORD} and {PASSWORD}'
    assert scrubber.scrub(nack) == (
        'header { key: "Proxy-Authorization" value: "Basic <redacted>" } and <redacted> and <redacted>'
    )
    stranger = SecretScrubber()
    assert stranger.scrub("Proxy-Authorization: Bearer abc.def-123456") == "Proxy-Authorization: Bearer <redacted>"
    assert stranger.scrub("see http://bob:hunter2@proxy:3128 now") == "see http://<redacted>@proxy:3128 now"
    assert stranger.scrub("cannot bind '192.0.2.1:8080'") == "cannot bind '192.0.2.1:8080'"


def test_log_records_are_scrubbed_in_both_formats(policy_set: PolicySet) -> None:
    scrubber = SecretScrubber(lambda: policy_set)
    for formatter in (logging.Formatter("%(levelname)s %(message)s"), JsonFormatter()):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(SecretFilter(scrubber))
        logger = logging.getLogger(f"test.secrets.{type(formatter).__name__}")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            logger.warning("NACK: %s", f"value: Basic {TOKEN}")
            try:
                raise ValueError(f"password {PASSWORD}")
            except ValueError:
                logger.exception("failed")
        finally:
            logger.removeHandler(handler)
        output = stream.getvalue()
        assert_clean(output, type(formatter).__name__)
        assert "NACK: value: Basic <redacted>" in output and "ValueError: password <redacted>" in output
        if isinstance(formatter, JsonFormatter):
            first = json.loads(output.splitlines()[0])
            assert (first["level"], first["message"]) == ("warning", "NACK: value: Basic <redacted>")


async def test_csds_admin_and_metrics_never_show_credentials(
    debug: Debug, policies: list[PolicySet], policy_set: PolicySet, caplog: pytest.LogCaptureFixture
) -> None:
    policies[0] = policy_set
    publisher = PolicyPublisher(debug.cache)
    publisher.publish(policy_set)
    debug.cache.set_grouping(lambda node: PolicyGroup("default", node.mode))
    client = debug.sotw("leaky", group=None, mode="standalone")
    await client.send(LDS, [])
    response = await client.recv()
    assert TOKEN.encode() in response.SerializeToString()  # what goes to Envoy has the credentials
    await client.nack(response, f'Proto constraint validation failed: value: "Basic {TOKEN}" ({USER}:{PASSWORD})')
    await eventually(lambda: debug.state.registry.for_node("leaky")[0].types[LDS].nacked)

    csds = await debug.csds(ClientStatusRequest())
    assert_clean(str(csds), "CSDS")
    assert "<redacted>" in str(csds)  # the header is there, with its value replaced
    admin = debug.admin()
    nodes = await admin.ListNodes(admin_pb2.ListNodesRequest(include_resources=True))
    assert "Basic <redacted>" in nodes.nodes[0].types[0].last_nack.message
    for view in (admin_pb2.CONFIG_VIEW_EXPECTED, admin_pb2.CONFIG_VIEW_ACKED):
        config = await admin.GetNodeConfig(admin_pb2.GetNodeConfigRequest(node_id="leaky", view=view))
        assert_clean(str(config), "GetNodeConfig")
    policy = await admin.GetPolicy(admin_pb2.GetPolicyRequest())
    assert_clean(str(policy), "GetPolicy")
    assert policy.policies[0].proxies[0].credentials == f"basic (user {USER})"
    assert_clean(generate_latest(REGISTRY).decode(), "metrics")
