"""A provider's connection slots: how many attempts may use its pool at once, and how
long an attempt may wait for one.

Each attempt takes a slot *before* its deadlines start and gives it back when its
connection is released.  A full pool is a limit of Standby's own, not a sign of the
provider's health: an attempt that finds every slot taken waits in a bounded FIFO queue
for at most ``wait`` seconds, and otherwise raises ``LocalLimit``, which the attempt loop
fails over with no health effect (``routing.outcomes``).  Before slots, the aiohttp
connector's limit made the request past ``max_connections`` wait for a connection
*inside* its first-token deadline, so a busy gateway looked like a silent provider:
timeouts, and breakers opened on healthy targets.

The common case (a slot free, nobody waiting) takes no timer and no await.  Waiters are
served in arrival order; one that leaves (its wait ran out, its request was cancelled)
never keeps a slot, even if the slot was handed to it as it was leaving.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from standby.errors import LocalLimit

log = logging.getLogger("standby.providers")

WAIT = 1.0  # seconds an attempt may wait for a slot before failing over
WARN_EVERY = 10.0  # seconds between two warnings about the same full pool


class Slots:
    """``size`` slots; at most ``queue`` attempts wait for one, each at most ``wait`` s."""

    __slots__ = (
        "_free",
        "_queue",
        "_refused",
        "_waiting",
        "_warned_at",
        "name",
        "queue",
        "size",
        "wait",
    )

    def __init__(
        self, name: str, size: int, *, queue: int | None = None, wait: float = WAIT
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one slot")
        self.name = name  # the provider's, for messages
        self.size = size
        self.queue = size if queue is None else queue
        self.wait = wait
        self._free = size
        self._queue: deque[asyncio.Future[None]] = deque()  # waiters (and some that left)
        self._waiting = 0  # waiters still waiting
        self._refused = 0  # LocalLimits since the last warning
        self._warned_at: float | None = None

    def __repr__(self) -> str:
        return (
            f"<Slots {self.name} busy={self.busy}/{self.size} "
            f"waiting={self._waiting}/{self.queue} wait={self.wait:g}s>"
        )

    @property
    def busy(self) -> int:
        """Slots taken now."""
        return self.size - self._free

    @property
    def waiting(self) -> int:
        """Attempts waiting for a slot now."""
        return self._waiting

    async def take(self, wait: float | None = None) -> None:
        """Take a slot, waiting at most ``wait`` seconds (default: ``self.wait``).

        Raises ``LocalLimit`` when the queue is full or the wait runs out.  The caller
        must ``give()`` the slot back exactly once.
        """
        if self._free and not self._waiting:
            self._free -= 1
            return
        if self._waiting >= self.queue:
            raise self._refuse(
                f"{self.name}: Standby's own connection limit for this provider is reached "
                f"({self.size} in use, {self._waiting} waiting; "
                f"providers.{self.name}.max_connections)"
            )
        wait = self.wait if wait is None else wait
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(fut)
        self._waiting += 1
        try:
            async with asyncio.timeout(wait):
                await fut  # resolved by give(): the slot is handed over, _free untouched
        except BaseException as exc:
            if fut.done() and not fut.cancelled():
                self.give()  # handed over just as we left: the next in line gets it
            else:
                fut.cancel()
                self._waiting -= 1
                self._compact()
            if isinstance(exc, TimeoutError):
                raise self._refuse(
                    f"{self.name}: no free connection in Standby's own pool for this provider "
                    f"within {wait:g}s ({self.size} in use; "
                    f"providers.{self.name}.max_connections)"
                ) from None
            raise

    def give(self) -> None:
        """Give a slot back: to the first attempt still waiting, else to the pool."""
        queue = self._queue
        while queue:
            fut = queue.popleft()
            if not fut.done():
                fut.set_result(None)
                self._waiting -= 1
                return
        self._free += 1

    def _compact(self) -> None:
        # waiters that left stay in the deque until give() reaches them; while every slot
        # is held for long, drop them in one pass so the deque stays near ``queue`` long
        if len(self._queue) > 2 * self._waiting + 64:
            self._queue = deque(f for f in self._queue if not f.done())

    def _refuse(self, message: str) -> LocalLimit:
        self._refused += 1
        now = asyncio.get_running_loop().time()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY:
            log.warning(
                "%s (%d attempt(s) refused since the last warning; they fail over and do "
                "not count against the provider's health)",
                message,
                self._refused,
            )
            self._warned_at, self._refused = now, 0
        return LocalLimit(message, target=self.name)
