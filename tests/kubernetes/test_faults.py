"""The Kubernetes source under the API server's failures, injected into the fake server (`FakeApiServer.inject`):
403, 409, 422, 429 with Retry-After, 500, 410 over HTTP and as an ERROR event, connection resets, paged lists and
expired continue tokens. Each test checks what the server saw (the requests and their timing, the stored status)
and that nothing of a Secret reaches the log, even when the API server's error text carries it."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import logging
import time
from collections.abc import Iterator

import pytest

from tests.kubernetes.apiserver import FakeApiServer, Request
from tests.kubernetes.conftest import FAST_WATCH, StartSource, eventually
from tests.kubernetes.resources import egress_proxy, secret

PROXY_A = "http://10.250.9.1:3128"
PROXY_B = "http://10.250.9.2:3128"
CANARY = "canary-Pa55w0rd-7f3a"
CANARY_FORMS = (
    CANARY,
    base64.b64encode(f"alice:{CANARY}".encode()).decode(),
    base64.b64encode(CANARY.encode()).decode(),
)
ECHO = f"etcdserver: request timed out while writing password={CANARY}"  # a server error that echoes a value


@pytest.fixture(autouse=True)
def no_secret_in_the_log(api: FakeApiServer, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test runs with a Secret holding the canary, named by the resource; no form of it may be logged."""
    caplog.set_level(logging.DEBUG)
    api.apply(secret("creds", "shop", username="alice", password=CANARY))
    yield
    logged = "\n".join(record.getMessage() for phase in ("setup", "call") for record in caplog.get_records(phase))
    assert "shop/corp" in logged or "listed" in logged, "the log was captured"
    for form in CANARY_FORMS:
        assert form not in logged, f"{form} was logged"


def corp(proxy: str = PROXY_A, name: str = "corp") -> dict[str, object]:
    return egress_proxy(name, "shop", httpsProxy=proxy, credentialsSecretRef={"name": "creds"})


def accepted_generation(api: FakeApiServer, name: str = "corp") -> object:
    status = (api.get("egressproxies", name, "shop") or {}).get("status") or {}
    return status.get("observedGeneration")


def times_of(api: FakeApiServer, method: str, path_part: str, *, watch: bool | None = None) -> list[float]:
    return [
        r.at for r in api.requests_for(method, path_part) if watch is None or (r.query.get("watch") == "true") == watch
    ]


def backoff(attempt: int) -> float:
    """The delay before retry `attempt` (0: the first), without jitter."""
    return min(FAST_WATCH.max_backoff_seconds, FAST_WATCH.initial_backoff_seconds * 2**attempt)


def gaps(moments: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(moments)]


# -- the list and the watch ------------------------------------------------------------------------------------------


async def test_list_errors_are_retried_with_growing_backoff(
    api: FakeApiServer, start_source: StartSource, caplog: pytest.LogCaptureFixture
) -> None:
    api.apply(corp())
    api.inject("list", "/egressproxies", 403, times=2, message=f'cannot list: "{CANARY}"')
    api.inject("list", "/egressproxies", 500, times=2, message=ECHO)
    running = await start_source()  # start() waits for the first successful list of every type
    assert running.proxy_of("shop") == "10.250.9.1:3128"
    lists = times_of(api, "GET", "/egressproxies", watch=False)
    assert len(lists) == 5
    assert all(gap >= 0.8 * backoff(index) for index, gap in enumerate(gaps(lists))), gaps(lists)
    assert "API error 403" in caplog.text and "API error 500" in caplog.text


async def test_watch_failures_resume_without_losing_an_update(api: FakeApiServer, start_source: StartSource) -> None:
    running = await start_source()
    await eventually(lambda: api.open_watches() == 3, "three open watches")
    lists_before = [watcher.lists for watcher in running.source.watchers]
    api.inject("watch", "/egressproxies", 403, message=f'cannot watch: "{CANARY}"')
    api.inject("watch", "/egressproxies", 500, times=2, message=ECHO)
    api.inject("watch", "/egressproxies", None, times=5)  # resets: more than urllib3 retries on its own
    api.drop_watches()
    api.apply(corp())  # made while the watch fails
    await eventually(lambda: running.proxy_of("shop") == "10.250.9.1:3128", "the change made while failing")
    assert [watcher.lists for watcher in running.source.watchers] == lists_before, "resumed, not relisted"
    await eventually(lambda: accepted_generation(api) == 1, "its status")


async def test_410_over_http_relists(api: FakeApiServer, start_source: StartSource) -> None:
    api.apply(corp(name="gone-soon"))
    running = await start_source()
    await eventually(lambda: api.open_watches("egressproxies") == 1, "the watch")
    watcher = next(w for w in running.source.watchers if w.name == "EgressProxy")
    lists = watcher.lists
    api.inject("watch", "/egressproxies", 410, message="too old resource version: 1 (9)")
    api.drop_watches()
    api.delete("egressproxies", "gone-soon", "shop")
    api.apply(corp())
    await eventually(lambda: watcher.lists == lists + 1, "a relist after 410")
    await eventually(lambda: running.proxy_of("shop") == "10.250.9.1:3128", "the state after the relist")
    assert [p.name for p in running.source.policies.policies] == ["egressproxy/shop/corp"], "the deletion is seen"


async def test_repeated_410_backs_off_instead_of_hammering_the_server(
    api: FakeApiServer, start_source: StartSource
) -> None:
    running = await start_source()
    await eventually(lambda: api.open_watches("egressproxies") == 1, "the watch")
    fault = api.inject("watch", "/egressproxies", 410, times=6)
    api.drop_watches()
    await eventually(lambda: fault.hits == 6 and api.open_watches("egressproxies") == 1, "six 410s, then a watch")
    relists = times_of(api, "GET", "/egressproxies", watch=False)[-6:]
    # The first 410 relists at once (a compaction is normal); 410 after 410 waits, doubling: 0.05, 0.1, 0.2, ...
    assert all(gap >= 0.8 * backoff(index) for index, gap in enumerate(gaps(relists))), gaps(relists)
    assert running.source.watchers[0].lists >= 7


async def test_429_retry_after_is_honoured_by_the_watch(api: FakeApiServer, start_source: StartSource) -> None:
    await start_source()
    await eventually(lambda: api.open_watches("egressproxies") == 1, "the watch")
    before = len(times_of(api, "GET", "/egressproxies", watch=True))
    api.inject("watch", "/egressproxies", 429, retry_after=1, times=1)
    api.drop_watches()
    await eventually(lambda: len(times_of(api, "GET", "/egressproxies", watch=True)) == before + 2, "watching again")
    watches = times_of(api, "GET", "/egressproxies", watch=True)
    assert watches[-1] - watches[-2] >= 0.9, "Retry-After: 1 (FAST_WATCH alone would retry after 0.05 s)"


async def test_a_watch_error_event_is_logged_without_its_text(
    api: FakeApiServer, start_source: StartSource, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_source()
    await eventually(lambda: api.open_watches() == 3, "three open watches")
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500}
    api.fail_watches(status | {"message": ECHO})
    api.apply(corp())
    await eventually(lambda: running.proxy_of("shop") == "10.250.9.1:3128", "watching again")
    assert "API error 500 InternalError" in caplog.text  # the canary check is the autouse fixture's


async def test_lists_are_paged(api: FakeApiServer, start_source: StartSource) -> None:
    for index in range(5):
        api.apply(corp(name=f"p{index}"))
    running = await start_source(watch=dataclasses.replace(FAST_WATCH, list_page_size=2))
    assert len(running.source.policies.policies) == 5
    pages = [r for r in api.requests_for("GET", "/egressproxies") if r.query.get("watch") != "true"]
    assert [(r.query.get("limit"), "continue" in r.query) for r in pages] == [("2", False), ("2", True), ("2", True)]


async def test_an_expired_continue_token_falls_back_to_a_full_list(
    api: FakeApiServer, start_source: StartSource
) -> None:
    for index in range(5):
        api.apply(corp(name=f"p{index}"))

    def continued(request: Request) -> bool:
        return "continue" in request.query

    api.inject("list", "/egressproxies", 410, when=continued, message="The provided continue parameter is too old")
    running = await start_source(watch=dataclasses.replace(FAST_WATCH, list_page_size=2))
    assert len(running.source.policies.policies) == 5
    pages = [r for r in api.requests_for("GET", "/egressproxies") if r.query.get("watch") != "true"]
    assert [(r.query.get("limit"), "continue" in r.query) for r in pages] == [("2", False), ("2", True), (None, False)]


# -- the status writer -----------------------------------------------------------------------------------------------


async def test_status_write_outlasts_a_long_run_of_failures(api: FakeApiServer, start_source: StartSource) -> None:
    fault = api.inject("patch", "/egressproxies/corp/status", 500, times=8, message=ECHO)
    api.apply(corp())
    await start_source()
    await eventually(lambda: fault.hits >= 2, "failing writes")
    api.apply(corp(PROXY_B))  # a newer verdict while the writes fail: it must be the one that lands
    await eventually(lambda: accepted_generation(api) == 2, "the status, after eight failures")
    assert fault.hits == 8


@pytest.mark.parametrize(("code", "times"), [(409, 2), (403, 3), (None, 2)], ids=["conflict", "forbidden", "reset"])
async def test_status_write_retries_conflicts_forbidden_and_resets(
    api: FakeApiServer, start_source: StartSource, code: int | None, times: int
) -> None:
    fault = api.inject("patch", "/egressproxies/corp/status", code, times=times)
    api.apply(corp())
    await start_source()
    await eventually(lambda: accepted_generation(api) == 1, "the status")
    assert fault.hits == times


async def test_status_422_is_not_retried_and_the_next_verdict_is_written(
    api: FakeApiServer, start_source: StartSource, caplog: pytest.LogCaptureFixture
) -> None:
    fault = api.inject("patch", "/egressproxies/corp/status", 422, message=f"status.message: {CANARY}")
    api.apply(corp())
    await start_source()
    await eventually(lambda: fault.hits == 1, "the refused write")
    await asyncio.sleep(0.5)  # ten initial backoffs: room for a retry that must not happen
    assert len(api.requests_for("PATCH", "/corp/status")) == 1, "the same patch would be refused again"
    assert accepted_generation(api) is None
    assert "status update refused (422" in caplog.text
    api.apply(corp(PROXY_B))
    await eventually(lambda: accepted_generation(api) == 2, "the next verdict")


async def test_status_retry_after_is_honoured_without_holding_up_other_resources(
    api: FakeApiServer, start_source: StartSource
) -> None:
    fault = api.inject("patch", "/egressproxies/slow/status", 429, retry_after=2)
    api.apply(corp(name="slow"))
    await start_source()
    await eventually(lambda: fault.hits == 1, "the first write, refused with Retry-After: 2")
    refused_at = time.monotonic()
    api.apply(corp(name="other"))
    await eventually(lambda: accepted_generation(api, "other") == 1, "the other resource's status", timeout=1.5)
    assert time.monotonic() - refused_at < 1.5, "the other write did not wait behind the throttled one"
    await eventually(lambda: accepted_generation(api, "slow") == 1, "the throttled resource's status")
    slow = times_of(api, "PATCH", "/slow/status")
    assert len(slow) == 2 and slow[1] - slow[0] >= 1.9, slow
