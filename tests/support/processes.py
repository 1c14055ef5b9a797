"""Bounded process helpers shared by the lab modules: namespaced argv, process groups, polling with a deadline.

Every child runs in its own session (process group) so that stopping it also stops whatever it spawned (squid's auth
helpers, for example), and every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

User = int | str


def resolve_user(user: User) -> tuple[int, int]:
    """Return ``(uid, gid)`` for a user name or numeric uid (a uid without a passwd entry uses gid = uid)."""
    if isinstance(user, str):
        entry = pwd.getpwnam(user)
        return entry.pw_uid, entry.pw_gid
    try:
        return user, pwd.getpwuid(user).pw_gid
    except KeyError:
        return user, user


def wrap_argv(
    argv: Sequence[str | os.PathLike[str]], *, netns: str | None = None, user: User | None = None
) -> list[str]:
    """Prefix ``argv`` with ``ip netns exec NS`` and/or ``setpriv`` so it runs in ``netns`` as ``user``.

    Both wrappers exec the next program, so the PID of the resulting process is the PID of the real program.
    """
    wrapped: list[str] = []
    if netns is not None:
        wrapped += ["ip", "netns", "exec", netns]
    if user is not None:
        uid, gid = resolve_user(user)
        wrapped += ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    return wrapped + [os.fspath(arg) for arg in argv]


def child_env(env: Mapping[str, str] | None = None, *, drop: Sequence[str] = ()) -> dict[str, str]:
    """The current environment minus variables named in ``drop`` (case-insensitive), updated with ``env``."""
    dropped = {name.lower() for name in drop}
    result = {key: value for key, value in os.environ.items() if key.lower() not in dropped}
    if env:
        result.update(env)
    return result


def kill_group(proc: subprocess.Popen[Any], *, grace: float = 5.0) -> int | None:
    """SIGTERM the process group of ``proc`` (its own session), SIGKILL after ``grace`` seconds; return its exit code.

    Only the group led by ``proc.pid`` is signalled: every child is started with ``start_new_session=True``.
    """
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
    # The leader may be gone while helpers of its group linger.
    _signal_group(proc.pid, signal.SIGKILL)
    return proc.returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_pid(pid: int, *, grace: float = 3.0) -> None:
    """SIGTERM one PID, SIGKILL it if it is still alive after ``grace`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie (state Z) is dead for our purposes; its parent reaps it.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def run_bounded(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    check: bool = False,
    input: str | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in its own session with a hard timeout; on timeout kill the whole group and re-raise."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        kill_group(proc, grace=1.0)
        stdout, stderr = proc.communicate()
        raise subprocess.TimeoutExpired(redact_argv(argv), timeout, output=stdout, stderr=stderr) from exc
    result = subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, redact_argv(argv), stdout, stderr)
    return result


_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*:[^/@\s]*@")
_SECRET_OPTIONS = {"-U", "--proxy-user", "-u", "--user"}


def redact_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with passwords masked (``scheme://user:pass@`` URLs, curl ``-U``/``-u`` values), for messages."""
    redacted: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            redacted.append("******")
            hide_next = False
            continue
        hide_next = arg in _SECRET_OPTIONS
        redacted.append(_URL_USERINFO.sub(r"\g<scheme>******@", arg))
    return redacted


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
    what: str = "condition",
    abort: Callable[[], str | None] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None/False; raise ``TimeoutError`` after ``timeout``.

    ``abort`` is checked on every round: a non-None result (e.g. "process exited with 1") ends the wait early.
    ``describe`` supplies context (logs) for the error message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        reason = abort() if abort is not None else None
        if reason is None and time.monotonic() >= deadline:
            reason = f"timed out after {timeout:g}s"
        if reason is not None:
            context = describe() if describe is not None else ""
            raise TimeoutError(f"waiting for {what}: {reason}" + (f"\n{context}" if context else ""))
        time.sleep(interval)


def tail(path: Path, *, max_chars: int = 6000) -> str:
    """The end of a text file (for error messages); empty string when it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text if len(text) <= max_chars else "...\n" + text[-max_chars:]


def wait_for_line(
    lines: Callable[[], list[str]],
    pattern: str,
    *,
    timeout: float,
    what: str,
    since: int = 0,
    abort: Callable[[], str | None] | None = None,
    describe: Callable[[], str] | None = None,
) -> str:
    """Wait until a line of ``lines()`` (index >= ``since``) matches regex ``pattern``; return that line."""
    regex = re.compile(pattern)
    return wait_until(
        lambda: next((line for line in lines()[since:] if regex.search(line)), None),
        timeout=timeout,
        interval=0.1,
        what=f"{what} matching {pattern!r}",
        abort=abort,
        describe=describe,
    )
