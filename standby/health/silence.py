"""Notice a target that went silent before its deadlines say so.

A blackholed provider accepts connections and never answers; each attempt only fails
when its ``first_token`` deadline fires, so without this every request started in the
meantime waits the full deadline.  ``SilenceWatch`` keeps the attempts of one target that
are still waiting for a first byte, and a short history of how long first bytes usually
take.  When ``quorum`` attempts have each waited ``factor`` times longer than usual (and
at least ``floor`` seconds), the target is *silent*: new requests skip it at once, while
the waiting attempts run out their own deadlines and trip the breaker.

Pure: every call takes ``now``; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import itertools


class SilenceWatch:
    __slots__ = (
        "_factor",
        "_floor",
        "_ids",
        "_max_wait",
        "_quorum",
        "_samples",
        "_size",
        "_threshold",
        "_waiting",
        "_writes",
    )

    def __init__(
        self,
        *,
        floor: float = 0.5,
        factor: float = 10.0,
        quorum: int = 3,
        samples: int = 64,
        max_wait: float = 600.0,
    ) -> None:
        self._max_wait = max_wait
        self._floor = floor
        self._factor = factor
        self._quorum = quorum
        self._size = samples
        self._samples: list[float] = []
        self._writes = 0
        self._threshold: float | None = None  # None until a first byte was ever seen
        self._waiting: dict[int, float] = {}  # ticket → start, oldest first
        self._ids = itertools.count(1)

    def started(self, now: float) -> int:
        ticket = next(self._ids)
        self._waiting[ticket] = now
        return ticket

    def answered(self, ticket: int, now: float) -> None:
        """The attempt got its first byte: it is no longer waiting; learn how long it took."""
        start = self._waiting.pop(ticket, None)
        if start is None:
            return
        sample = now - start
        if len(self._samples) < self._size:
            self._samples.append(sample)
        else:
            self._samples[self._writes % self._size] = sample
        self._writes += 1
        if self._threshold is None or self._writes % 8 == 0:
            ordered = sorted(self._samples)
            p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
            self._threshold = max(self._floor, self._factor * p90)

    def heard(self) -> None:
        """A first byte came from the target another way (a probe): the silence, if there
        was one, is over, and the attempts still waiting from it no longer count."""
        self._waiting.clear()

    def ended(self, ticket: int) -> None:
        """The attempt ended without a first byte (failed or abandoned)."""
        self._waiting.pop(ticket, None)

    def silent(self, now: float) -> bool:
        # a ticket nobody ended (a bug elsewhere) must not make a target silent for ever
        for ticket, start in list(self._waiting.items())[:8]:
            if now - start <= self._max_wait:
                break
            del self._waiting[ticket]
        if self._threshold is None or len(self._waiting) < self._quorum:
            return False
        for index, start in enumerate(self._waiting.values()):
            if index == self._quorum - 1:
                return now - start > self._threshold
        return False  # pragma: no cover - the loop always reaches the quorum-th entry

    @property
    def threshold(self) -> float | None:
        """How long a first byte may take before it is overdue (None: nothing learnt yet)."""
        return self._threshold

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def __repr__(self) -> str:
        threshold = "unknown" if self._threshold is None else f"{self._threshold:.3f}s"
        return f"<SilenceWatch waiting={len(self._waiting)} threshold={threshold}>"
