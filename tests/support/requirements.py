"""Skip-or-fail checks for tests that need root, network namespaces or external binaries.

On a developer machine a missing prerequisite SKIPS the test with a reason that names the missing thing and the
command that installs it. In CI (environment variable ``CI=true``) everything is supposed to be installed, so the
same check FAILS the test instead: a silently skipped integration test in CI hides a broken pipeline.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

APT_INSTALL = "apt-get install -y squid tinyproxy curl iproute2 iptables util-linux"
PIP_INSTALL = "pip install -e '.[test]'"


def in_ci() -> bool:
    """True when running in CI (``CI=true``, case-insensitive), where missing prerequisites are failures."""
    return os.environ.get("CI", "").strip().lower() == "true"


def need(ok: bool, what: str, how_to_install: str) -> None:
    """Skip the calling test (or fail it when ``CI=true``) unless ``ok``.

    ``what`` names the missing thing ("root", "squid", ...), ``how_to_install`` is the command or step that provides
    it; both end up in the skip/failure message.
    """
    if ok:
        return
    message = f"needs {what} (install/enable with: {how_to_install})"
    if in_ci():
        pytest.fail(f"{message} -- CI=true, so a missing prerequisite is a failure, not a skip", pytrace=False)
    pytest.skip(message)


def interpreter_bin() -> Path:
    """The directory of the running interpreter: a virtual environment's ``bin``, where its console scripts
    (``envoy``, ``grpcurl``, ``egress-xds``) are, also when the venv is not activated and so not on PATH."""
    return Path(sys.executable).parent


def find_binary(name: str, *fallbacks: str) -> Path | None:
    """Locate an executable next to the interpreter (:func:`interpreter_bin`), else on PATH, else the first existing
    fallback path (e.g. ``/usr/sbin/squid``)."""
    beside = interpreter_bin() / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    for candidate in fallbacks:
        path = Path(candidate)
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def need_binary(name: str, how_to_install: str, *fallbacks: str) -> Path:
    """Return the path of executable ``name`` or skip/fail the test via :func:`need`."""
    path = find_binary(name, *fallbacks)
    need(path is not None, f"the `{name}` executable", how_to_install)
    assert path is not None
    return path


def need_root() -> None:
    """Skip/fail unless running as root (network namespaces, veth pairs and iptables need it)."""
    need(
        os.geteuid() == 0,
        "root (network namespaces, veth pairs, iptables)",
        "run the integration tests as root, e.g. `sudo -E python -m pytest tests/integration`",
    )


def need_lab_tools() -> None:
    """Skip/fail unless root and the tools the namespace lab uses (ip, curl, setpriv) are present."""
    need_root()
    need_binary("ip", "apt-get install -y iproute2", "/usr/sbin/ip", "/sbin/ip")
    need_binary("curl", "apt-get install -y curl")
    need_binary("setpriv", "apt-get install -y util-linux")
