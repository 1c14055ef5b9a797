"""Fixtures for the Kubernetes source: the fake API server, a kubeconfig for it, and a running source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import pytest

from egress_xds.policy.model import EgressPolicy, PolicySet
from egress_xds.policy.node import Node, select_policy
from egress_xds.sources.kubernetes.client import ClientSettings
from egress_xds.sources.kubernetes.source import KubernetesOptions, KubernetesSource
from egress_xds.sources.kubernetes.watch import WatchSettings
from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.resources import kubeconfig_text

TOKEN = "token-for-the-fake-api-server"
# Small numbers so that reconnects happen within the test's time; the protocol is the same.
FAST_WATCH = WatchSettings(
    watch_timeout_seconds=20,
    read_timeout_margin_seconds=5,
    connect_timeout_seconds=2,
    initial_backoff_seconds=0.05,
    max_backoff_seconds=0.5,
)
DEADLINE = 10.0


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def kubeconfig(tmp_path: Path, api: FakeApiServer) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text(api.url, TOKEN))
    return path


class RunningSource:
    """A started KubernetesSource and what it published."""

    def __init__(self, source: KubernetesSource, published: list[PolicySet]) -> None:
        self.source = source
        self.published = published

    def policy_for(self, namespace: str | None = None, node_id: str = "pod-1", **labels: str) -> EgressPolicy | None:
        metadata = {f"labels.{key}": value for key, value in labels.items()}
        if namespace is not None:
            metadata["namespace"] = namespace
        return select_policy(self.source.policies, Node(node_id, metadata))

    def proxy_of(self, namespace: str | None = None, **labels: str) -> str | None:
        """Where that pod's TLS goes: the https proxy's first endpoint, or None when no policy applies."""
        policy = self.policy_for(namespace, **labels)
        if policy is None or policy.https_proxy is None:
            return None
        return str(policy.https_proxy.endpoints[0])

    def header_of(self, namespace: str | None = None, **labels: str) -> str | None:
        policy = self.policy_for(namespace, **labels)
        assert policy is not None and policy.https_proxy is not None
        credentials = policy.https_proxy.credentials
        return credentials.header_value if credentials is not None else None


async def eventually(predicate: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Poll (bounded) until `predicate()` is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.02)


StartSource = Callable[..., Awaitable[RunningSource]]


@pytest.fixture
async def start_source(kubeconfig: Path) -> AsyncIterator[StartSource]:
    """`await start_source()` -> RunningSource (after its first list); every source is stopped after the test."""
    started: list[KubernetesSource] = []

    async def start(
        environ: Mapping[str, str] | None = None,
        settings: ClientSettings | None = None,
        watch: WatchSettings = FAST_WATCH,
    ) -> RunningSource:
        options = KubernetesOptions(client=settings or ClientSettings(kubeconfig=kubeconfig), watch=watch)
        published: list[PolicySet] = []
        source = KubernetesSource(options, published.append, environ=environ or {})
        running = RunningSource(source, published)
        started.append(source)
        await asyncio.wait_for(source.start(), DEADLINE)
        return running

    yield start
    for source in started:
        await source.stop()
