"""What `egress-xds traffic` prints: the table, the suggested rules (a policy egress-xds accepts) and its usage
errors (exit 2, the flag named, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from egress_xds import cli, yaml_text
from egress_xds.admin.traffic_decisions import decision_finder
from egress_xds.admin.traffic_view import SUGGESTED_HEADER, suggested_rules, traffic_document, traffic_table
from egress_xds.admin.v1 import admin_pb2
from egress_xds.policy.model import Deny, Direct
from egress_xds.sources.file import load_policy_file
from egress_xds.traffic.store import DestinationStats


def _response() -> admin_pb2.GetTrafficResponse:
    response = admin_pb2.GetTrafficResponse(max_workloads=1000, max_destinations=100)
    response.server_time.FromSeconds(1_000)
    workload = response.workloads.add(node_id="pod-a", namespace="team-a", policy="team-a")
    workload.last_seen.FromSeconds(990)
    ok = workload.destinations.add(destination="api.github.com:443", kind="proxy", proxy="corp")
    ok.outcomes.update({"ok": 412, "proxy-auth-required": 3})
    ok.last_failure = "tunnel_response:407"
    ok.last_failure_time.FromSeconds(880)
    forbidden = workload.destinations.add(destination="paste.example:443", kind="proxy", proxy="corp")
    forbidden.outcomes["proxy-forbidden"] = 2
    direct = workload.destinations.add(destination="10.1.2.3:5432", kind="direct")
    direct.outcomes["direct"] = 7
    named = workload.destinations.add(destination="db.internal:5432", kind="direct")
    named.outcomes["direct"] = 1
    workload.destinations.add(destination="other", other=True).outcomes["ok"] = 9
    return response


def test_table_reads_like_the_issue_asks() -> None:
    table = traffic_table(_response())
    assert table.splitlines()[0] == "node pod-a  namespace team-a  policy team-a  last seen 10s ago"
    assert (
        "  api.github.com:443  via corp      ok 412  proxy-auth-required 3 (last 2m ago: tunnel_response:407)" in table
    )
    assert "(other: destinations past the budget of 100 per workload)" in table
    assert traffic_table(admin_pb2.GetTrafficResponse()).startswith("no traffic reported yet")
    document = traffic_document(_response())
    assert document["workloads"][0]["destinations"][0]["outcomes"] == {"ok": 412, "proxy-auth-required": 3}


def test_suggested_rules_are_a_policy_egress_xds_accepts(tmp_path: Path) -> None:
    rules = suggested_rules(_response())
    text = SUGGESTED_HEADER + yaml_text.dump({"httpsProxy": "http://127.0.0.1:3128", **rules})
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    (policy,) = load_policy_file(path).policies
    by_action = {type(rule.action): rule for rule in policy.rules}
    assert [domain.suffix for domain in by_action[Deny].domains] == ["paste.example"]
    assert by_action[Deny].ports == (443,)
    direct = by_action[Direct]
    assert [str(network) for network in direct.cidrs] == ["10.1.2.3/32"]
    assert [domain.suffix for domain in direct.domains] == ["db.internal"] and direct.ports == (5432,)
    assert yaml.safe_load(text)["rules"] == rules["rules"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["traffic", "--outcome", "refused"], "--outcome 'refused': expected one of ok, proxy-auth-required"),
        (["traffic", "pod-a", "--namespace", "team-a"], "give a NODE or --namespace, not both"),
        (["traffic", "--server", "not an address"], "--server 'not an address': expected HOST:PORT"),
        (["traffic", "--cert", "c.pem"], "--cert and --key go together"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_an_unreachable_server_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["traffic", "--server", "127.0.0.1:9"]) == 1
    error = capsys.readouterr().err
    assert "cannot ask egress-xds at 127.0.0.1:9: UNAVAILABLE" in error and len(error.strip().splitlines()) == 1


def test_a_tcp_rows_decision_is_read_from_the_capture_listener(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "proxies: {corp: 'http://10.0.0.1:3128'}\nhttpsProxy: corp\nnoProxy: db.internal\n"
        "rules:\n  - {name: no paste, domains: [paste.example], action: deny}\n"
    )
    policies = load_policy_file(path)
    (name,) = [policy.name for policy in policies.policies]
    decision = decision_finder(policies)

    def row(destination: str, kind: str, proxy: str = "") -> DestinationStats:
        return DestinationStats(destination, protocol="tcp", kind=kind, proxy=proxy, address="10.9.9.9:443")

    assert decision(name, row("api.example:443", "proxy", "corp")) == "default: TLS uses httpsProxy"
    assert decision(name, row("paste.example:443", "deny")) == "rule 1 'no paste'"
    assert decision(name, row("db.internal:443", "direct")) == "noProxy entry 'db.internal'"
    # Envoy sent it elsewhere than the current policy would (a policy change since): no decision is made up.
    assert decision(name, row("paste.example:443", "proxy", "corp")) == ""
    assert decision("no-such-policy", row("api.example:443", "proxy", "corp")) == ""
    explicit = DestinationStats("api.github.com:443", protocol="tcp", kind="proxy", proxy="corp")
    assert decision(name, explicit) == ""  # an explicit listener's row: no captured address
