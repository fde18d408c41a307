"""How many CPU cores this process may use (stdlib only; any layer may import it)."""

from __future__ import annotations

import os

__all__ = ["idle_cores", "usable_cores"]


def usable_cores() -> int:
    """CPU cores this process may use (``sched_getaffinity``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def idle_cores() -> int:
    """Usable cores not taken by other work: :func:`usable_cores`, less the machine's load
    beyond this process (1-minute load average, minus the one this process adds), at least 1.

    A thread pool larger than this spins against the other processes (OpenMP threads wait
    busily), which costs more CPU than it saves: on 2 cores under a load of 6, two torch
    threads took 4x the CPU of one for the same training.
    """
    usable = usable_cores()
    try:
        others = max(0.0, os.getloadavg()[0] - 1.0)
    except (AttributeError, OSError):  # no load average on this platform
        return usable
    free = (os.cpu_count() or usable) - int(round(others))
    return max(1, min(usable, free))
