"""Node selectors: id glob, exact metadata, and Kubernetes label-selector requirements (`matchExpressions`)."""

from __future__ import annotations

import pytest

from egress_xds.policy.model import MetadataRequirement, NodeSelector, SelectorOperator
from egress_xds.policy.node import Node, requirement_matches, select_policy, selector_matches
from egress_xds.policy.parse import parse_document
from egress_xds.policy.yaml_tree import load_document

IN, NOT_IN, EXISTS, ABSENT = (
    SelectorOperator.IN,
    SelectorOperator.NOT_IN,
    SelectorOperator.EXISTS,
    SelectorOperator.DOES_NOT_EXIST,
)


@pytest.mark.parametrize(
    ("operator", "values", "metadata", "expected"),
    [
        (IN, {"web", "api"}, {"labels.app": "web"}, True),
        (IN, {"web", "api"}, {"labels.app": "db"}, False),
        (IN, {"web"}, {}, False),
        (NOT_IN, {"batch"}, {"labels.app": "web"}, True),
        (NOT_IN, {"batch"}, {"labels.app": "batch"}, False),
        (NOT_IN, {"batch"}, {}, True),  # Kubernetes: NotIn holds for an absent label
        (EXISTS, set(), {"labels.app": ""}, True),
        (EXISTS, set(), {}, False),
        (ABSENT, set(), {}, True),
        (ABSENT, set(), {"labels.app": "web"}, False),
    ],
)
def test_requirement_semantics_follow_kubernetes(
    operator: SelectorOperator, values: set[str], metadata: dict[str, str], expected: bool
) -> None:
    requirement = MetadataRequirement("labels.app", operator, frozenset(values))
    assert requirement_matches(requirement, metadata) is expected


def test_all_parts_of_a_selector_must_hold() -> None:
    selector = NodeSelector(
        id_glob="pod-*",
        metadata={"namespace": "shop"},
        requirements=(MetadataRequirement("labels.tier", NOT_IN, frozenset({"batch"})),),
    )
    assert selector_matches(selector, Node("pod-1", {"namespace": "shop", "labels.tier": "web"}))
    assert not selector_matches(selector, Node("vm-1", {"namespace": "shop"}))
    assert not selector_matches(selector, Node("pod-1", {"namespace": "other"}))
    assert not selector_matches(selector, Node("pod-1", {"namespace": "shop", "labels.tier": "batch"}))


def test_selectors_with_different_requirements_differ() -> None:
    plain = NodeSelector(metadata={"namespace": "a"})
    required = NodeSelector(metadata={"namespace": "a"}, requirements=(MetadataRequirement("x", EXISTS),))
    assert plain != required and hash(plain) != hash(required)
    assert required == NodeSelector(metadata={"namespace": "a"}, requirements=(MetadataRequirement("x", EXISTS),))


def test_file_format_nodes_key_still_selects_by_id_and_metadata() -> None:
    text = """
policies:
  - name: payments
    nodes: {id: "pay-*", metadata: {namespace: payments}}
    httpsProxy: http://10.0.0.1:3128
  - name: rest
    httpsProxy: http://10.0.0.2:3128
"""
    policies = parse_document(load_document(text, "policy.yaml"))
    chosen = select_policy(policies, Node("pay-1", {"namespace": "payments"}))
    assert chosen is not None and chosen.name == "payments"
    assert chosen.selector.requirements == ()
    other = select_policy(policies, Node("pay-1", {"namespace": "shop"}))
    assert other is not None and other.name == "rest"


def test_nodes_service_account_is_a_glob_on_the_node_service_account() -> None:
    text = """
policies:
  - name: deployers
    nodes: {serviceAccount: "deploy-*", metadata: {namespace: ci}}
    httpsProxy: http://10.0.0.9:3128
  - name: rest
    httpsProxy: http://10.0.0.1:3128
"""
    policies = parse_document(load_document(text, "policy.yaml"))
    chosen = [
        select_policy(policies, Node("n", metadata)).name  # type: ignore[union-attr]
        for metadata in (
            {"namespace": "ci", "serviceAccount": "deploy-bot"},
            {"namespace": "ci", "serviceAccount": "builder"},
            {"namespace": "ci"},
            {"namespace": "other", "serviceAccount": "deploy-bot"},
        )
    ]
    assert chosen == ["deployers", "rest", "rest", "rest"]


@pytest.mark.parametrize(("value", "message"), [("", "expected a non-empty string"), (["a"], "expected")])
def test_a_bad_service_account_selector_names_the_field(value: object, message: str) -> None:
    from egress_xds.policy.errors import ConfigError

    document = load_document(f"httpsProxy: http://p:1\nnodes:\n  serviceAccount: {value!r}\n", "policy.yaml")
    with pytest.raises(ConfigError) as raised:
        parse_document(document)
    (issue,) = raised.value.issues
    assert "nodes.serviceAccount" in str(issue) and message in str(issue) and "policy.yaml:3" in str(issue)


@pytest.mark.parametrize("mode", ["bogus", "Standalone", "SIDECAR", " sidecar", ""])
def test_a_node_of_an_unknown_mode_gets_no_policy_and_one_warning_per_stream(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    policies = parse_document(load_document("httpsProxy: http://10.0.0.1:3128\n", "p.yaml"))
    stream_node = Node("web-1", {"mode": mode})  # what one stream's first request says
    other_stream_node = Node("web-1", {"mode": mode})  # the same Envoy on a second stream
    with caplog.at_level("WARNING", logger="egress_xds.policy.node"):
        for _ in range(3):  # every publish regroups every stream
            assert select_policy(policies, stream_node) is None
        assert select_policy(policies, other_stream_node) is None
    warnings = [record.getMessage() for record in caplog.records]
    assert (
        warnings
        == [
            f"node web-1 gets no configuration: unknown mode {mode!r}: expected 'sidecar' or 'standalone' "
            "(exact, lowercase)"
        ]
        * 2
    )
    assert select_policy(policies, Node("web-1", {"mode": "standalone"})) is not None
    assert select_policy(policies, Node("web-1")) is not None
