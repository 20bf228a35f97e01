"""Task cancellation that must not get lost.

A loop that outlives errors (``except (RedisError, OSError)``, then try again) can eat a
cancellation: a client library that is interrupted mid-call may raise an error of its
own instead of ``CancelledError`` (redis-py's timeouts do, under Python 3.11's
``asyncio.timeout``), and the loop then carries on — the task stays "cancelling" for
ever and whoever awaits it at shutdown waits with it (seen: a replica's lease task kept
``standby serve`` from exiting after SIGTERM).  ``raise_if_cancelled`` goes in such
``except`` blocks; ``stop`` is how a shutdown cancels tasks without trusting them to end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("standby")

STOP_GRACE = 5.0  # seconds a cancelled task gets to end before shutdown goes on without it


def raise_if_cancelled(cause: BaseException | None = None) -> None:
    """Raise ``CancelledError`` if the current task was asked to stop: call it where an
    error is caught and the work would go on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause


async def stop(tasks: Iterable[asyncio.Task[Any]], grace: float = STOP_GRACE) -> list[str]:
    """Cancel ``tasks`` and wait up to ``grace`` seconds for them to end; the names of
    those that did not (logged; they are left behind) — a job that ignores its
    cancellation must not keep the process from stopping.  What the others raised is
    read and dropped: they were stopping."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    if not tasks:
        return []
    done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not report it as lost
    names = sorted(task.get_name() for task in pending)
    if names:
        log.error("%s did not stop within %g s of being cancelled; going on without", names, grace)
    return names
