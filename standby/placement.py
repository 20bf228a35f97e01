"""Where a helper process of the gateway runs: off the gateway's cores when it can be.

An operator (or a benchmark) may pin the gateway to some cores; a child process inherits
that pinning, and would then take its CPU time from the gateway itself.  A child that
calls ``spare_cores()`` first moves to the machine's other cores, if there are any;
unpinned, nothing changes and the operating system places it as it likes.
"""

from __future__ import annotations

import contextlib
import os


def spare_cores() -> None:
    """Leave the parent's cores to it when it is pinned to some and the machine has
    others (measured for the status page: a visitor flood on the gateway's own core
    added 4 ms to its p99, on another core nothing)."""
    with contextlib.suppress(AttributeError, OSError):
        gateway = os.sched_getaffinity(os.getppid())
        others = set(range(os.cpu_count() or 1)) - gateway
        if others:
            os.sched_setaffinity(0, others)
