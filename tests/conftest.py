"""Shared fixtures: the network-namespace lab, the upstream servers, and the CI rule "nothing is skipped in CI".

Tests that need root, network namespaces, iptables or an external binary call :func:`tests.support.requirements.need`
(directly or through the lab helpers): on a developer machine they are skipped with a reason that names the missing
thing and how to install it; with ``CI=true`` they fail instead. As a safety net, with ``CI=true`` any other skip of a
test under ``tests/integration``, ``tests/e2e`` or ``tests/kubernetes`` is turned into a failure too, unless the test
is marked ``@pytest.mark.ci_may_skip``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from tests.support.requirements import in_ci, interpreter_bin, need, need_lab_tools

if TYPE_CHECKING:  # the lab modules import trustme etc.; unit tests must not need them
    from tests.support.netns import Lab
    from tests.support.upstreams import Upstreams

_STRICT_DIRS = ("integration", "e2e", "kubernetes", "admin")

# Property tests (hypothesis): the default profile is seeded and bounded so that CI is repeatable and fast; a long
# fuzzing run is `python3 -m pytest --hypothesis-profile=long -m fuzz` (random seed, 50x the examples).
_FUZZ_HEALTH_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile(
    "ci", derandomize=True, max_examples=100, deadline=None, suppress_health_check=_FUZZ_HEALTH_CHECKS
)
settings.register_profile("long", max_examples=5_000, deadline=None, suppress_health_check=_FUZZ_HEALTH_CHECKS)
settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers used by the lab fixtures; put the interpreter's directory first on PATH.

    `.venv/bin/python -m pytest` (the README's command) runs with the venv not activated, so its console scripts
    (envoy, grpcurl, egress-xds) are not on PATH; every subprocess a test starts by name must still find them.
    """
    config.addinivalue_line("markers", "ci_may_skip: this test may be skipped even when CI=true")
    os.environ["PATH"] = os.pathsep.join([str(interpreter_bin()), os.environ.get("PATH", "")])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With CI=true, a skipped integration/e2e test is reported as failed (CI installs everything)."""
    report = yield
    if (
        in_ci()
        and report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("ci_may_skip") is None
        and _in_strict_dir(Path(str(item.path)))
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped although CI=true (integration tests must not be skipped in CI): {reason}"
    return report


def _in_strict_dir(path: Path) -> bool:
    tests_dir = Path(__file__).resolve().parent
    try:
        relative = path.resolve().relative_to(tests_dir)
    except ValueError:
        return False
    return bool(relative.parts) and relative.parts[0] in _STRICT_DIRS


@pytest.fixture
def requires_root() -> None:
    """Skip (fail when CI=true) unless root and the lab tools (ip, curl, setpriv) are available."""
    need_lab_tools()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A fresh pod/corp/inet namespace lab for the module (see :mod:`tests.support.netns`), torn down after it."""
    from tests.support.netns import lab as make_lab

    need_lab_tools()
    with contextlib.ExitStack() as stack:
        try:
            the_lab = stack.enter_context(make_lab())
        except RuntimeError as exc:
            need(False, f"network namespaces and veth pairs ({exc})", "run as root with CAP_NET_ADMIN/CAP_SYS_ADMIN")
        yield the_lab


@pytest.fixture(scope="module")
def upstreams(lab: Lab) -> Iterator[Upstreams]:
    """The HTTPS/HTTP/banner servers in the lab's inet namespace (module scope)."""
    from tests.support.upstreams import start_upstreams

    with start_upstreams(lab) as servers:
        yield servers
