"""The policy-option matrix (tests/support/policy_matrix.py) through the real CLI and the real Envoy.

Every row: `egress-xds check` passes, and `egress-xds render --static` for the row's node, as a sidecar and as a
standalone node, is a bootstrap `envoy --mode validate` accepts (the CLI's printed YAML, as a user would hand it
to Envoy). A Secret row is an EgressProxy converted by the server's converter, rendered the way `render` does.

A seeded sample of the file rows (all of them with EGRESS_XDS_MATRIX=full) is served by one `egress-xds serve`
to four long-running Envoys in a lab namespace (SotW and Delta, sidecar and standalone; their bootstraps come
from `egress-xds bootstrap` with node ids and metadata of awkward shapes), the policy swapped by rewriting the
served file: each must reach SYNCED with no NACK, hold exactly the listeners and clusters the translator makes,
and `egress-xds status --fail-nack-after 0` must pass.

A policy that `check` accepts and Envoy rejects is a bug in `check` or in the translator, never in this test.
The CLI runs in-process here (`cli.main`, the code `egress-xds` runs) to keep the 29 rows within budget.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from egress_xds import cli, yaml_text
from egress_xds.policy.node import MODE_METADATA_KEY, Node, NodeMode, select_policy
from egress_xds.sources.file import load_policy_file
from egress_xds.sources.kubernetes.api import Kind, ResourceRef
from egress_xds.sources.kubernetes.convert import policy_from_resource
from egress_xds.translate import translate
from egress_xds.translate.bootstrap import static_bootstrap
from tests.admin.serving import Serve
from tests.kubernetes.admission import admit_secret, crds
from tests.support.egress import replace_file, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy, validate_config
from tests.support.netns import Lab
from tests.support.policy_matrix import NODE_IDS, NODE_METADATA, Row, matrix
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

ROWS = matrix()
FULL = os.environ.get("EGRESS_XDS_MATRIX") == "full"
SAMPLE_SIZE = 6  # rows pushed over ADS in CI (about 2 s each); EGRESS_XDS_MATRIX=full pushes every file row
MODES = ("sidecar", "standalone")


def run_cli(*args: str) -> tuple[int, str, str]:
    """`egress-xds ARGS` in-process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


def node_flags(node_id: str, metadata: dict[str, str], mode: str) -> list[str]:
    flags = ["--node-id", node_id, "--mode", mode]
    for key, value in metadata.items():
        flags += ["--node-meta", f"{key}={value}"]
    return flags


def policy_text(row: Row) -> str:
    return yaml.safe_dump(row.document(), sort_keys=False, allow_unicode=True, width=120)


def row_id(row: Row) -> str:
    return f"row{row.index}-{row['scheme']}-{row['credentials']}-{row['address']}-{row['domain_rule']}"


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_every_row_checks_and_renders_into_bootstraps_envoy_accepts(row: Row, tmp_path: Path) -> None:
    if row.kubernetes:
        bootstraps = kubernetes_bootstraps(row)
        what = f"{row.describe()}\n{yaml.safe_dump(row.kubernetes_resources()[0], sort_keys=False)}"
    else:
        path = write_policy(tmp_path, policy_text(row))
        what = f"{row.describe()}\n{path.read_text()}"
        code, out, err = run_cli("check", "--config", str(path))
        assert code == 0, f"check failed: {err}\n{what}"
        assert f"{path}: OK" in out, out
        expected = "main" if row["policies"] == "several" else "default"
        node = Node(id=row.node_id, metadata=dict(row.node_metadata))
        selected = select_policy(load_policy_file(path), node)
        assert selected is not None and selected.name == expected, f"the row's node is not selected\n{what}"
        bootstraps = []
        for mode in MODES:
            flags = node_flags(row.node_id, dict(row.node_metadata), mode)
            code, out, err = run_cli("render", "--config", str(path), *flags, "--static", "--show-secrets")
            assert code == 0, f"render ({mode}) failed: {err}\n{what}"
            bootstraps.append((mode, out))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda item: validate_config(item[1]), bootstraps))
    for (mode, text), result in zip(bootstraps, results, strict=True):
        assert result.returncode == 0, f"envoy rejects the {mode} render:\n{result.stderr[-3000:]}\n{what}"
        assert yaml.safe_load(text)["node"]["id"] == row.node_id


def kubernetes_bootstraps(row: Row) -> list[tuple[str, str]]:
    """The EgressProxy and its Secret admitted as the API server admits them (CRD schema, CEL rules; nothing
    pruned), converted as the server converts them, and rendered as `render --static` renders."""
    resource, secrets = row.kubernetes_resources()
    admitted = crds()[Kind.EGRESS_PROXY.value].admit(resource)  # Rejected here: the real API server refuses it
    assert admitted.warnings == [], admitted.warnings
    stored = {
        key: admit_secret(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": key[0], "name": key[1]}, **value}
        ).obj
        for key, value in secrets.items()
    }
    ref = ResourceRef(Kind.EGRESS_PROXY, resource["metadata"]["namespace"], resource["metadata"]["name"])
    policy = policy_from_resource(ref, admitted.obj, stored)  # ConfigError here: the converter refuses the row
    bootstraps = []
    for mode in MODES:
        metadata = {**row.node_metadata, MODE_METADATA_KEY: mode}
        data = static_bootstrap(translate(policy, NodeMode(mode)), node_id=row.node_id, node_metadata=metadata)
        bootstraps.append((mode, yaml_text.dump(data)))
    return bootstraps


# --- over ADS, to long-running Envoys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """One long-running Envoy: its protocol, mode and node identity."""

    protocol: str
    mode: str
    node_id: str
    metadata: dict[str, str]
    admin_port: int


CLIENTS = (
    Client("sotw", "sidecar", "n", {"namespace": "no", "labels.app": "y"}, 19901),
    Client("delta", "sidecar", "*", {"namespace": "on", "labels.app": "y"}, 19902),
    Client("sotw", "standalone", "1e3", {"env": "null"}, 19903),
    Client("delta", "standalone", "ünï-007", {"zone": "~", "rank": "0755"}, 19904),
)


@dataclass
class Fleet:
    serve: Serve
    envoys: list[tuple[Client, EnvoyProcess]]
    policy: Path

    def describe(self) -> str:
        return "\n".join(envoy.describe() for _, envoy in self.envoys) + "\n" + self.serve.describe()

    def nodes(self) -> dict[str, dict[str, Any]]:
        answer = self.serve.call("egress_xds.admin.v1.Admin/ListNodes")
        return {node["node_id"]: node for node in answer.get("nodes", [])}


def file_rows_sample() -> list[Row]:
    rows = [row for row in ROWS if not row.kubernetes]
    if FULL:
        return rows
    return sorted(random.Random(16).sample(rows, SAMPLE_SIZE), key=lambda row: row.index)


@pytest.fixture(scope="module")
def fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("matrix-ads")
    policy = write_policy(directory, "httpsProxy: http://192.0.2.1:3128\n")
    serve = Serve(policy, directory / "serve.log", lab=lab, ns="pod").start()
    envoys: list[tuple[Client, EnvoyProcess]] = []
    try:
        for client in CLIENTS:
            flags = node_flags(client.node_id, client.metadata, client.mode)
            args = ["bootstrap", *flags, "--xds-address", serve.address]
            args += ["--admin-address", f"127.0.0.1:{client.admin_port}"]
            code, text, err = run_cli(*args, *(["--delta"] if client.protocol == "delta" else []))
            assert code == 0, err
            envoys.append((client, start_envoy(text, netns=lab.ns("pod"))))  # the CLI's YAML, as printed
        yield Fleet(serve, envoys, policy)
    finally:
        for _, envoy in envoys:
            envoy.cleanup()
        serve.stop()


def synced(fleet: Fleet) -> bool:
    """Every client holds what the server expects for it, or fail at once on a NACK."""
    nodes = fleet.nodes()
    for client in CLIENTS:
        node = nodes.get(client.node_id)
        if node is None:
            return False
        for sync in node["types"]:
            if sync["status"] == "SYNC_STATUS_NACKED" or sync.get("last_nack"):
                raise AssertionError(f"{client}: {sync['short_name']} NACKed: {sync.get('last_nack')}")
            if sync["status"] != "SYNC_STATUS_SYNCED" or sync.get("version_acked") != sync.get("version_expected"):
                return False
    return True


def dynamic_names(envoy: EnvoyProcess) -> tuple[set[str], set[str]]:
    """The listeners and clusters Envoy holds from xDS (a listener with an error state fails the test)."""
    listeners, clusters = set(), set()
    for config in envoy.config_dump()["configs"]:
        for item in config.get("dynamic_listeners", []):
            assert "error_state" not in item, f"{item['name']}: {item['error_state']}"
            if "active_state" in item or "warming_state" in item:  # a removed listener drains for a while
                listeners.add(item["name"])
        for item in config.get("dynamic_active_clusters", []):
            clusters.add(item["cluster"]["name"])
    return listeners, clusters


@pytest.mark.parametrize("row", file_rows_sample(), ids=row_id)
def test_a_sample_of_rows_reaches_sotw_and_delta_envoys_without_a_nack(fleet: Fleet, row: Row) -> None:
    reloads = fleet.serve.metric("egress_xds_reloads_total", result="ok")
    replace_file(fleet.policy, policy_text(row))
    what = f"{row.describe()}\n{fleet.policy.read_text()}"
    wait_until(
        lambda: fleet.serve.metric("egress_xds_reloads_total", result="ok") > reloads,
        timeout=20,
        what="the server to load the row",
        describe=lambda: f"{what}\n{fleet.serve.describe()}",
    )
    wait_until(
        lambda: synced(fleet),
        timeout=30,
        interval=0.2,
        what="every Envoy to hold the row's configuration",
        describe=lambda: f"{what}\n{json.dumps(fleet.nodes(), indent=1)[-4000:]}\n{fleet.describe()}",
    )
    policies = load_policy_file(fleet.policy)
    nodes = fleet.nodes()
    for client, envoy in fleet.envoys:
        node = Node(id=client.node_id, metadata={**client.metadata, MODE_METADATA_KEY: client.mode})
        policy = select_policy(policies, node)
        assert policy is not None and nodes[client.node_id]["policy"] == policy.name, what
        assert nodes[client.node_id]["metadata"].get("namespace") == client.metadata.get("namespace")
        resources = translate(policy, NodeMode(client.mode))
        want = ({item.name for item in resources.listeners}, {item.name for item in resources.clusters})
        wait_until(
            lambda envoy=envoy, want=want: dynamic_names(envoy) == want,  # type: ignore[misc]
            timeout=10,
            what=f"{client}: Envoy's config_dump to hold exactly the translator's listeners and clusters",
            describe=lambda envoy=envoy, want=want: f"want {want}\nhave {dynamic_names(envoy)}\n{what}",  # type: ignore[misc]
        )
    status = fleet.serve.egress_xds("status", "--server", fleet.serve.address, "--fail-nack-after", "0")
    assert status.returncode == 0, f"{status.stdout}\n{status.stderr}\n{what}"


def test_status_shows_each_awkward_node_in_sync(fleet: Fleet) -> None:
    """`egress-xds status NODE` for node ids such as `*` and `1e3`: found (not globbed, not a number), in sync."""
    wait_until(lambda: synced(fleet), timeout=30, what="every Envoy in sync", describe=fleet.describe)
    for client, _ in fleet.envoys:
        shown = fleet.serve.egress_xds("status", "--server", fleet.serve.address, client.node_id)
        assert shown.returncode == 0, f"{client}: {shown.stdout}\n{shown.stderr}"
        assert "CDS: no difference" in shown.stdout and "LDS: no difference" in shown.stdout, shown.stdout


# --- bootstraps for awkward node ids and metadata ---------------------------------------------------------------


@pytest.mark.parametrize("index", range(max(len(NODE_IDS), len(NODE_METADATA))))
def test_bootstrap_for_an_awkward_node_round_trips_and_envoy_reads_it_back(index: int) -> None:
    """`egress-xds bootstrap` prints YAML in which a node id `n` or `no` stays a string, for PyYAML and Envoy."""
    node_id, metadata = NODE_IDS[index % len(NODE_IDS)], NODE_METADATA[index % len(NODE_METADATA)]
    code, text, err = run_cli("bootstrap", *node_flags(node_id, metadata, "sidecar"), "--xds-address", "[::1]:18000")
    assert code == 0, err
    node = yaml.safe_load(text)["node"]
    assert node["id"] == node_id
    assert node["metadata"] == {**metadata, MODE_METADATA_KEY: "sidecar"}
    result = validate_config(text)  # Envoy's own YAML reader: an unquoted `n` is false, and refused as node.id
    assert result.returncode == 0, f"{node_id!r} {metadata}: {result.stderr[-2000:]}\n{text}"
