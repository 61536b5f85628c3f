"""CPU seconds a benchmark's own server process used (``--start``): on a loaded machine the wall
clock measures the neighbours too, while the daemon's user+system time is what the code cost."""

from __future__ import annotations

import os
from collections.abc import Callable


def meter(pid: int | None) -> Callable[[], float] | None:
    """A function returning the process's CPU seconds so far (None: not ours, or no /proc)."""
    if pid is None or not os.path.exists(f"/proc/{pid}/stat"):
        return None
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    return cpu
