"""`bootstrap --xds-address A --xds-address B`: one xDS cluster with an endpoint per replica (a real Envoy moves
between them in tests/integration/test_replica_failover.py)."""

from __future__ import annotations

from typing import Any

import pytest

from egress_xds.translate import names
from egress_xds.translate.bootstrap import XdsTls, ads_bootstrap


def xds_cluster(bootstrap: dict[str, Any]) -> dict[str, Any]:
    (cluster,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == names.XDS_CLUSTER]
    return cluster


def endpoints(cluster: dict[str, Any]) -> list[str]:
    (group,) = cluster["load_assignment"]["endpoints"]
    addresses = [endpoint["endpoint"]["address"]["socket_address"] for endpoint in group["lb_endpoints"]]
    return [f"{address['address']}:{address['port_value']}" for address in addresses]


def test_every_replica_is_an_endpoint_of_the_one_xds_cluster_each_once() -> None:
    replicas = ["10.0.0.1:18000", "10.0.0.2:18000", "10.0.0.1:18000", "[fd00::3]:18000"]
    cluster = xds_cluster(ads_bootstrap("n", replicas))
    assert endpoints(cluster) == ["10.0.0.1:18000", "10.0.0.2:18000", "fd00::3:18000"]
    assert cluster["type"] == "STATIC"
    assert cluster.get("lb_policy", "ROUND_ROBIN") == "ROUND_ROBIN"  # the next stream goes to the next replica


def test_a_name_among_the_replicas_is_resolved_by_strict_dns() -> None:
    cluster = xds_cluster(ads_bootstrap("n", ["egress-xds-0.egress-xds.svc:18000", "10.0.0.2:18000"]))
    assert cluster["type"] == "STRICT_DNS" and len(endpoints(cluster)) == 2
    assert ads_bootstrap("n", "10.0.0.1:18000") == ads_bootstrap("n", ["10.0.0.1:18000"])  # one address as before


def test_mutual_tls_checks_the_first_replica_name_unless_told() -> None:
    tls = XdsTls(ca="/ca.crt", client_cert="/tls.crt", client_key="/tls.key", sds_dir="/sds")
    cluster = xds_cluster(ads_bootstrap("n", ["egress-xds.egress-xds.svc:18000", "10.0.0.2:18000"], xds_tls=tls))
    assert cluster["transport_socket"]["typed_config"]["sni"] == "egress-xds.egress-xds.svc"


def test_no_address_is_an_error() -> None:
    with pytest.raises(ValueError, match="--xds-address"):
        ads_bootstrap("n", [])
