"""
Read a process's memory and CPU use from C{/proc}.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def statusKiB(pid: int, field: str) -> int:
    """
    A C{kB} field (such as C{VmRSS} or C{VmHWM}) of C{/proc/PID/status}, in KiB; 0 if
    the process is gone.
    """
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rssBytes(pid: int) -> int:
    """
    The resident set size of C{pid} now, in bytes.
    """
    return statusKiB(pid, "VmRSS") * 1024


def peakRssBytes(pid: int) -> int:
    """
    The peak resident set size (C{VmHWM}) of C{pid}, in bytes.
    """
    return statusKiB(pid, "VmHWM") * 1024


def resetPeakRss(pid: int) -> bool:
    """
    Reset C{VmHWM} of C{pid} to its current RSS (C{echo 5 > /proc/PID/clear_refs});
    whether that worked.
    """
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpuSeconds(pid: int) -> float:
    """
    User plus system CPU time used so far by C{pid}, in seconds.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machineBusySeconds() -> float:
    """
    CPU time all processes on the machine have used since boot (everything in the
    C{cpu} line of C{/proc/stat} but idle and iowait), in seconds.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class RssSampler:
    """
    Samples the RSS of a process in a background thread, to find its peak over a
    stretch of time even where C{VmHWM} cannot be reset.

    Use as a context manager; L{peak} is the largest RSS seen, in bytes.
    """

    def __init__(self, pid: int, interval: float = 0.02, limit: float = 3600.0) -> None:
        self.pid = pid
        self.interval = interval
        self.limit = limit
        self.peak = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        """
        Sample until stopped, or for at most C{limit} seconds.
        """
        deadline = time.monotonic() + self.limit
        while not self.stopping.is_set() and time.monotonic() < deadline:
            self.peak = max(self.peak, rssBytes(self.pid))
            self.stopping.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = rssBytes(self.pid)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()
        self.peak = max(self.peak, rssBytes(self.pid))
