"""Publishing: snapshots built off the event loop are applied on it, and a build overtaken by another publish is
never applied over it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from egress_xds import publish as publish_module
from egress_xds.policy.model import PolicySet
from egress_xds.policy.node import NodeMode, PolicyGroup
from egress_xds.publish import PolicyPublisher
from egress_xds.sources.file import load_policy_file
from egress_xds.xds.cache import SnapshotCache


def policies(tmp_path: Path, port: int) -> PolicySet:
    path = tmp_path / f"policy-{port}.yaml"
    path.write_text(f"httpsProxy: http://10.0.0.1:{port}\n")
    return load_policy_file(path)


def served_port(publisher: PolicyPublisher) -> int:
    proxy = publisher.policies.policies[0].https_proxy
    assert proxy is not None
    return proxy.endpoints[0].port


async def test_a_build_in_a_thread_is_applied_on_the_loop(tmp_path: Path) -> None:
    publisher = PolicyPublisher(SnapshotCache(lambda node: None))
    loop_thread = threading.get_ident()
    report = await publisher.publish_off_loop(lambda: policies(tmp_path, 3128))
    assert threading.get_ident() == loop_thread
    assert report.changed and served_port(publisher) == 3128
    assert publisher.cache.get(PolicyGroup("default", NodeMode.SIDECAR)) is not None


async def test_a_build_overtaken_by_another_publish_is_built_again_from_the_current_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = PolicyPublisher(SnapshotCache(lambda node: None))
    current = {"policies": policies(tmp_path, 1111)}
    in_thread = threading.Event()
    release = threading.Event()
    build = publish_module.build_snapshots

    def slow_build(policy_set: PolicySet) -> publish_module.Build:
        if threading.current_thread() is not threading.main_thread():
            in_thread.set()
            release.wait(10)
        return build(policy_set)

    monkeypatch.setattr(publish_module, "build_snapshots", slow_build)
    pending = asyncio.create_task(publisher.publish_off_loop(lambda: current["policies"]))
    await asyncio.to_thread(in_thread.wait, 10)
    # Meanwhile another source publishes a newer policy set on the loop.
    current["policies"] = policies(tmp_path, 2222)
    publisher.publish(current["policies"])
    release.set()
    await pending
    assert served_port(publisher) == 2222  # never the stale 1111 build


async def test_a_burst_of_event_publishes_costs_at_most_two_builds_all_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = PolicyPublisher(SnapshotCache(lambda node: None))
    sets = [policies(tmp_path, 3000 + index) for index in range(20)]
    current = {"policies": sets[0]}
    build_threads: list[int] = []
    build = publish_module.build_snapshots

    def recording_build(policy_set: PolicySet) -> publish_module.Build:
        build_threads.append(threading.get_ident())
        return build(policy_set)

    monkeypatch.setattr(publish_module, "build_snapshots", recording_build)
    reports: list[publish_module.PublishReport] = []
    publishes = publish_module.CoalescedPublishes(publisher, lambda: current["policies"], reports.append)
    for policy_set in sets:  # twenty watch events in one turn of the loop
        current["policies"] = policy_set
        publishes.request()
    await publishes.idle()
    assert served_port(publisher) == 3019
    assert 1 <= len(build_threads) <= 2 and len(reports) == len(build_threads)
    assert threading.get_ident() not in build_threads


async def test_an_internal_error_in_one_event_publish_does_not_stop_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = PolicyPublisher(SnapshotCache(lambda node: None))
    current = {"policies": policies(tmp_path, 4001)}
    build = publish_module.build_snapshots
    calls = {"count": 0}

    def failing_once(policy_set: PolicySet) -> publish_module.Build:
        calls["count"] += 1
        if calls["count"] == 1:
            raise KeyError("a bug in the translator")
        return build(policy_set)

    monkeypatch.setattr(publish_module, "build_snapshots", failing_once)
    publishes = publish_module.CoalescedPublishes(publisher, lambda: current["policies"], lambda report: None)
    publishes.request()
    await publishes.idle()
    assert "internal error while publishing" in caplog.text and not publisher.policies.policies
    current["policies"] = policies(tmp_path, 4002)
    publishes.request()
    await publishes.idle()
    assert served_port(publisher) == 4002
