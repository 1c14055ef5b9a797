"""Asking several replicas and merging (egress_xds/admin/replicas.py), the Service's ready replicas from its
EndpointSlices (admin/service_replicas.py), and the merged table. The live command is tested with real servers and
Envoys in tests/admin/test_status_replicas.py."""

from __future__ import annotations

import threading

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client

from egress_xds.admin.client import AdminUnavailable
from egress_xds.admin.replicas import Replica, ask_replicas, replicas_of
from egress_xds.admin.service_replicas import XDS_PORT_NAME, parse_service, ready_replicas
from egress_xds.admin.status_view import Stream, streams_table
from egress_xds.admin.v1 import admin_pb2

Ports = list[tuple[str, int]]
Endpoints = list[tuple[int, bool | None, str | None]]
LABEL = st.from_regex(r"[a-z]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


def test_each_replica_is_asked_once_in_parallel_and_a_silent_one_is_named() -> None:
    replicas = replicas_of(["10.0.0.1:18000", "10.0.0.2:18000", "10.0.0.1:18000", "10.0.0.3:18000"])
    assert [replica.address for replica in replicas] == ["10.0.0.1:18000", "10.0.0.2:18000", "10.0.0.3:18000"]
    asked: list[str] = []
    all_in = threading.Barrier(len(replicas), timeout=5)  # every call runs at once, or this times out

    def call(replica: Replica) -> str:
        asked.append(replica.address)
        all_in.wait()
        if replica.address.startswith("10.0.0.2"):
            raise AdminUnavailable(f"cannot ask egress-xds at {replica.address}: UNAVAILABLE: connection refused")
        return f"answer of {replica.address}"

    fan_out = ask_replicas(replicas, call)
    assert sorted(asked) == [replica.address for replica in replicas]
    assert [(answer.replica.address, answer.answer) for answer in fan_out.answers] == [
        ("10.0.0.1:18000", "answer of 10.0.0.1:18000"),
        ("10.0.0.3:18000", "answer of 10.0.0.3:18000"),
    ]
    (failure,) = fan_out.failures
    assert failure.replica.address == "10.0.0.2:18000" and "UNAVAILABLE" in failure.error
    assert fan_out.partial
    assert not ask_replicas([], call).partial


def test_a_bug_in_the_call_is_not_taken_for_a_silent_replica() -> None:
    def call(replica: Replica) -> str:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        ask_replicas([Replica("10.0.0.1:18000")], call)


@given(LABEL, LABEL)
def test_service_names_parse(name: str, namespace: str) -> None:
    assert parse_service(f"{name}.{namespace}") == (name, namespace)


@given(st.text(max_size=40))
def test_any_service_text_parses_or_says_what_is_expected(text: str) -> None:
    try:
        name, namespace = parse_service(text)
    except ValueError as error:
        assert "expected NAME.NAMESPACE" in str(error)
    else:
        assert f"{name}.{namespace}" == text and name and namespace


ENDPOINT = st.tuples(
    st.integers(1, 254),  # the address's last byte
    st.sampled_from([True, False, None]),  # ready (None: unset, which means ready)
    st.sampled_from(["Pod", None]),  # targetRef kind
)
SLICE = st.tuples(
    st.sampled_from([[(XDS_PORT_NAME, 18000)], [("metrics", 9102), (XDS_PORT_NAME, 18001)], [("other", 7)], []]),
    st.lists(ENDPOINT, max_size=5),
)


def endpoint_slice(ports: Ports, endpoints: Endpoints) -> object:
    return client.V1EndpointSlice(
        address_type="IPv4",
        ports=[client.DiscoveryV1EndpointPort(name=name, port=port) for name, port in ports],
        endpoints=[
            client.V1Endpoint(
                addresses=[f"10.1.0.{last}"],
                conditions=client.V1EndpointConditions(ready=ready),
                target_ref=client.V1ObjectReference(kind=kind, name=f"pod-{last}") if kind else None,
            )
            for last, ready, kind in endpoints
        ],
    )


@given(st.lists(SLICE, max_size=4))
def test_ready_replicas_are_the_ready_endpoints_on_the_xds_port(
    slices: list[tuple[list[tuple[str, int]], list[tuple[int, bool | None, str | None]]]],
) -> None:
    found = ready_replicas([endpoint_slice(ports, endpoints) for ports, endpoints in slices])
    expected: dict[str, str] = {}
    for ports, endpoints in slices:
        named = [port for name, port in ports if name == XDS_PORT_NAME]
        port = named[0] if named else (ports[0][1] if len(ports) == 1 else None)
        for last, ready, kind in endpoints:
            if port is not None and ready is not False:
                expected.setdefault(f"10.1.0.{last}:{port}", f"pod-{last}" if kind else "")
    assert [replica.address for replica in found] == sorted(expected)
    assert {replica.address: replica.pod for replica in found} == expected


def test_the_merged_table_names_each_streams_replica_and_ages_by_its_clock() -> None:
    def node(node_id: str, connected: int) -> admin_pb2.NodeStatus:
        return admin_pb2.NodeStatus(
            node_id=node_id,
            stream_id=1,
            policy="default",
            address="ipv4:10.0.3.7:5000",
            connected_at=Timestamp(seconds=connected),
        )

    streams = [
        Stream(node("vm-1", 1_000), Timestamp(seconds=1_060), "10.0.0.1:18000 (egress-xds-a)"),
        Stream(node("vm-1", 5_000), Timestamp(seconds=5_005), "10.0.0.2:18000 (egress-xds-b)"),
    ]
    lines = streams_table(streams).splitlines()
    assert lines[0].split()[:3] == ["NODE", "REPLICA", "POLICY"]
    assert lines[1].split()[:2] == ["vm-1", "10.0.0.1:18000"] and lines[1].endswith("1m")
    assert lines[2].split()[:2] == ["vm-1", "10.0.0.2:18000"] and lines[2].endswith("5s")
    assert "REPLICA" not in streams_table([Stream(node("vm-1", 1_000), Timestamp(seconds=1_060))])
