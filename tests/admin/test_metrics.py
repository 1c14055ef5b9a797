"""The Prometheus metrics the ADS streams keep, read from prometheus_client's registry (deltas: it is global)."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from egress_xds import metrics
from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.type_urls import SHORT_NAMES
from tests.admin.conftest import Debug
from tests.xds.client import eventually
from tests.xds.data import cluster, snapshot


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Counts:
    """Metric values now, to compare with later."""

    def __init__(self) -> None:
        self.values = self.read()

    @staticmethod
    def read() -> dict[str, float]:
        return {
            "sotw": sample("egress_xds_connected_streams", protocol="sotw"),
            "delta": sample("egress_xds_connected_streams", protocol="delta"),
            "responses": sample("egress_xds_responses_total", type="cds"),
            "bytes": sample("egress_xds_response_bytes_total", type="cds"),
            "nacks": sample("egress_xds_nacks_total", type="cds"),
            "converged": sample("egress_xds_convergence_seconds_count", type="cds"),
        }

    def delta(self) -> dict[str, float]:
        now = self.read()
        return {key: now[key] - self.values[key] for key in now}


def test_every_known_type_has_a_label_of_its_own() -> None:
    assert set(SHORT_NAMES.values()) <= set(metrics.TYPES)


async def test_streams_responses_nacks_and_convergence_are_counted(debug: Debug) -> None:
    counts = Counts()
    debug.cache.set_snapshot("g1", snapshot([cluster("a")]))
    sotw, delta = debug.sotw("m-sotw"), debug.delta("m-delta")
    await sotw.send(CDS)
    await delta.send(CDS)
    first_sotw, first_delta = await sotw.recv(), await delta.recv()
    await eventually(lambda: counts.delta()["sotw"] == 1 and counts.delta()["delta"] == 1)
    size = len(first_sotw.SerializeToString()) + len(first_delta.SerializeToString())
    assert counts.delta()["responses"] == 2 and counts.delta()["bytes"] == size
    await sotw.ack(first_sotw)
    await delta.ack(first_delta)
    await asyncio.sleep(0.2)
    assert counts.delta()["converged"] == 0  # connecting is not a configuration change

    debug.cache.set_snapshot("g1", snapshot([cluster("a", port=1)]))
    await sotw.ack(await sotw.recv())
    await delta.nack(await delta.recv(), "rejected")
    await eventually(lambda: counts.delta()["converged"] == 1 and counts.delta()["nacks"] == 1)
    await delta.expect_silence()
    assert counts.delta()["responses"] == 4  # the rejected version was not sent again
    assert sample("egress_xds_convergence_seconds_sum", type="cds") > 0

    await sotw.close()
    await delta.close()
    await eventually(lambda: counts.delta()["sotw"] == 0 and counts.delta()["delta"] == 0)
