"""The failures a replica has to tell the others, so that their breakers count them.

One replica's breaker opens after ``breaker.failures`` failures in a row.  Replicas behind
a balancer each see a share of the traffic, so on their own they would each need that
many failures — three replicas, three times the failed requests before the cluster stops
sending any.  So each replica tells the others the failures it saw (a few milliseconds
later, in batches, never on the request's path), and they add them to their count
(``Breaker.add_peer_failures``): the cluster opens after about as many failures as one
replica would.

A success resets a count, here as in the breaker.  It is told only when it cancels a
count the cluster may hold (failures told or heard since the last reset), so a healthy
target costs no message at all.  ``FailureTally`` is pure: what is pending per target and
which counts are running; the caller publishes what ``drain`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Pending:
    """What to tell of one target: whether a success reset the count, then how many
    failures came after it."""

    reset: bool = False
    failures: int = 0


class FailureTally:
    """Per target, the failures and resets not yet told.  Bounded: ``max_targets``
    targets pending or counted at most (past it, news of a new target is dropped)."""

    def __init__(self, max_targets: int = 2048) -> None:
        self._max_targets = max_targets
        self._pending: dict[str, Pending] = {}
        # targets whose count may be running somewhere in the cluster: a success here
        # must reset it there
        self._counting: dict[str, None] = {}

    def __bool__(self) -> bool:
        return bool(self._pending)

    def failed(self, key: str) -> None:
        """An attempt of this replica failed on ``key``."""
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self._max_targets:
                return
            pending = self._pending[key] = Pending()
        pending.failures += 1

    def succeeded(self, key: str) -> bool:
        """An attempt of this replica succeeded on ``key``; whether that is news."""
        pending = self._pending.get(key)
        if pending is not None:
            pending.reset, pending.failures = True, 0
            return True
        if key not in self._counting:
            return False  # no count runs anywhere: nothing to reset
        if len(self._pending) >= self._max_targets:
            return False
        self._pending[key] = Pending(reset=True)
        return True

    def heard(self, key: str, reset: bool, failures: int) -> None:
        """Another replica told this of ``key``: a count runs (or no longer does)."""
        if failures > 0:
            self._count(key)
        elif reset:
            self._counting.pop(key, None)

    def drain(self) -> dict[str, Pending]:
        """What to tell now (and forget here)."""
        told, self._pending = self._pending, {}
        for key, pending in told.items():
            if pending.failures:
                self._count(key)
            else:
                self._counting.pop(key, None)
        return told

    def clear(self) -> None:
        """Forget everything (after Redis was away: what was pending is stale)."""
        self._pending.clear()
        self._counting.clear()

    def _count(self, key: str) -> None:
        if key not in self._counting and len(self._counting) >= self._max_targets:
            del self._counting[next(iter(self._counting))]
        self._counting[key] = None

    def __repr__(self) -> str:
        return f"<FailureTally pending={len(self._pending)} counting={len(self._counting)}>"
