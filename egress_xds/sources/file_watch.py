"""Watch the policy file and hand every valid new version to a callback.

The directory is watched, not the file: editors and Kubernetes ConfigMap volumes replace a file by renaming or by
swapping a symlink, which a watch on the file itself would miss. Bursts of changes are coalesced by `watchfiles`'
debounce. An invalid new version is reported (every error, with file and line) and the last good one stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import watchfiles

from egress_xds.policy.errors import ConfigError
from egress_xds.policy.model import PolicySet
from egress_xds.sources.file import load_policy_file

_log = logging.getLogger("egress_xds.sources")

DEFAULT_DEBOUNCE_MS = 200


async def watch_policy_file(
    path: Path,
    on_policies: Callable[[PolicySet], None],
    on_error: Callable[[ConfigError], None],
    *,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set (or the task is cancelled), calling back once per coalesced change."""
    path = path.absolute()
    directory = path.parent
    last_text = _read(path)

    def concerns_policy(_change: watchfiles.Change, changed_path: str) -> bool:
        # Kubernetes ConfigMaps swap a `..data` symlink; editors write temporary files next to the target.
        changed = Path(changed_path)
        return changed == path or changed.name.startswith("..")

    async for _changes in watchfiles.awatch(
        directory, watch_filter=concerns_policy, debounce=debounce_ms, step=50, stop_event=stop, recursive=False
    ):
        text = _read(path)
        if text == last_text:
            continue
        last_text = text
        try:
            policies = load_policy_file(path)
        except ConfigError as error:
            on_error(error)
            continue
        on_policies(policies)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
