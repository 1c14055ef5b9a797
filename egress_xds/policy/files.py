"""Reading the files a policy names (the policy file itself, credentialsFile, caFile): regular files only, bounded.

A FIFO with no writer would block `check` and a reload forever on open, a device such as /dev/zero never ends, and
a directory gives an error message no one expects. The file is opened without blocking and checked on the open
descriptor (no window for a swap between a check and the open): a regular file is read up to a limit; a pipe too
(`--config <(kubectl ...)`, `--config /dev/stdin`: read until its writer closes it; a FIFO no one writes to within
FIFO_WAIT_SECONDS is refused, never waited on for ever); anything else is refused.
"""

from __future__ import annotations

import os
import select
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


FIFO_WAIT_SECONDS = 5.0


class NotARegularFile(OSError):
    """Raised for anything but a regular file or a pipe; `strerror` says what it is."""


def read_regular_file(path: Path, limit: int) -> bytes:
    """At most `limit + 1` bytes of the regular file or pipe at `path` (one more than the limit, so a caller can
    tell "too large"). Raises OSError (NotARegularFile for a directory, socket or device)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise NotARegularFile(0, f"is {kind}, not a regular file" if kind.startswith("a ") else kind)
        if stat.S_ISFIFO(mode) and not _readable_within(descriptor, FIFO_WAIT_SECONDS):
            raise NotARegularFile(0, f"is a FIFO (named pipe) no one wrote to within {FIFO_WAIT_SECONDS:g} s")
        os.set_blocking(descriptor, True)
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(descriptor, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _readable_within(descriptor: int, seconds: float) -> bool:
    """A FIFO opened without blocking has data, or its writer closed it, within `seconds`. (Linux reports no hang-up
    for a FIFO that never had a writer: poll waits for one.)"""
    poller = select.poll()
    poller.register(descriptor, select.POLLIN)
    return bool(poller.poll(seconds * 1000))
