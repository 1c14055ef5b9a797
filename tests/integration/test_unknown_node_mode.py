"""A node over xDS whose `mode` metadata is neither `sidecar` nor `standalone` (`Standalone`, a typo) gets no
listeners at all, not a sidecar's capture listener by default, and the server says why once per stream (a reload
regroups every stream, and must not say it again). A real server, a real Envoy; asserted on Envoy's /config_dump."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.admin.serving import Serve
from tests.support.egress import bootstrap, replace_file, write_policy
from tests.support.envoy import start_envoy
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

POLICY = "httpsProxy: http://127.0.0.1:9\nrules:\n  - {name: one, domains: [a.example], action: direct}\n"
NODE = "typo-node"


def warnings_about(serve: Serve) -> list[str]:
    return [message for message in serve.messages() if message.startswith(f"node {NODE} gets no configuration")]


def test_a_node_of_an_unknown_mode_gets_no_listener_and_one_warning(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, POLICY)
    serve = Serve(policy, tmp_path / "serve.log").start()
    try:
        config = bootstrap(NODE, serve.address, delta=True, mode="standalone")  # no readiness listener of its own
        config["node"]["metadata"]["mode"] = "Standalone"  # what `egress-xds bootstrap` refuses; Envoy sends it
        del config["admin"]  # start_envoy adds one on a free port
        with start_envoy(config, admin_port=0, ready_timeout=None) as envoy:
            wait_until(
                lambda: envoy.ready() and envoy.stats().get("listener_manager.lds.update_success", 0) > 0,
                timeout=20,
                what="Envoy to take its (empty) listeners from the server",
                describe=lambda: envoy.describe() + serve.describe(),
            )
            replace_file(policy, POLICY + "nodes: {id: 'typo-*'}\n")  # another selector: every stream is regrouped
            wait_until(
                lambda: any(message.startswith("reloaded ") for message in serve.messages()),
                timeout=20,
                what="the reload",
                describe=serve.describe,
            )
            dump = envoy.config_dump()
            listeners = [
                config
                for section in dump["configs"]
                if section["@type"].endswith("ListenersConfigDump")
                for config in section.get("dynamic_listeners", [])
            ]
            assert listeners == [], listeners
            listed = serve.call("egress_xds.admin.v1.Admin/ListNodes", {"node_id": NODE})["nodes"]
            assert [(node.get("policy", ""), node.get("mode")) for node in listed] == [("", "Standalone")], listed
        assert warnings_about(serve) == [
            f"node {NODE} gets no configuration: unknown mode 'Standalone': expected 'sidecar' or 'standalone' "
            "(exact, lowercase)"
        ], serve.describe()
    finally:
        serve.stop()
