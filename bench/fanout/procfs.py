"""What the benchmark reads about a process from /proc (any process: the servers are measured from outside, the
same way for egress-xds and the floor), and the machine's load."""

from __future__ import annotations

import os
import resource
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, field: str) -> int:
    """A `kB` field of /proc/PID/status (VmRSS: resident now, VmHWM: the peak so far); 0 if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_kb(pid: int) -> int:
    return status_kb(pid, "VmRSS")


def peak_rss_kb(pid: int) -> int:
    return status_kb(pid, "VmHWM")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU of a process (all threads): of this one from os.times, of another from /proc/PID/stat
    (clock-tick resolution); 0.0 if it is gone."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    return sum(cpu_times(pid))


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of another process so far, all its threads; (0.0, 0.0) if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is fields[0], utime fields[11]
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE to the hard limit: one socket per connection, up to N with one stream per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def load_average() -> str:
    """The 1, 5 and 15-minute load averages: other work on the machine shows here and in the figures."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
