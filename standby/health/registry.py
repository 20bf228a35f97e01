"""Health of every target: breaker, rate-limit hold, recent outcomes, last error.

One :class:`TargetHealth` per target key (``provider/model``), created on demand by
:class:`HealthRegistry`. The attempt loop asks ``admit(now)`` before trying a target and
reports what happened with a method named by the event (``succeeded``, ``failed``,
``tripped``, ``auth_failed``, ``rate_limited``, ``rejected``, ``refused_prefill``),
passing back the :class:`~standby.health.breaker.Admission` it got.  Besides health, a
record keeps what was learned about what the target cannot do (``no_prefill``, F15).
Clocks are injected (``now``, seconds on a monotonic clock); nothing here reads the
time. Use from one event loop.
"""

from __future__ import annotations

from typing import Any

from standby.health.breaker import Admission, Breaker
from standby.plan.model import BreakerConfig

_MAX_ERROR = 300  # characters of the last error kept (the caller has already sanitized it)


class OutcomeWindow:
    """Counts of outcome strings over the last ``span`` seconds, in fixed time buckets."""

    __slots__ = ("_counts", "_stamps", "_width", "span")

    def __init__(self, span: float = 60.0, buckets: int = 60) -> None:
        self.span = span
        self._width = span / buckets
        self._stamps: list[int | None] = [None] * buckets  # bucket number held by each slot
        self._counts: list[dict[str, int]] = [{} for _ in range(buckets)]

    def add(self, outcome: str, now: float) -> None:
        """Count one ``outcome`` at time ``now``."""
        number = int(now // self._width)
        slot = number % len(self._stamps)
        if self._stamps[slot] != number:  # the slot holds an expired bucket: reuse it
            self._stamps[slot] = number
            self._counts[slot] = {}
        counts = self._counts[slot]
        counts[outcome] = counts.get(outcome, 0) + 1

    def counts(self, now: float) -> dict[str, int]:
        """Outcome → count over the window ending at ``now``."""
        newest = int(now // self._width)
        oldest = newest - len(self._stamps) + 1
        total: dict[str, int] = {}
        for stamp, counts in zip(self._stamps, self._counts, strict=True):
            if stamp is not None and oldest <= stamp <= newest:
                for outcome, n in counts.items():
                    total[outcome] = total.get(outcome, 0) + n
        return dict(sorted(total.items()))


class TargetHealth:
    """Everything known about one target's recent health."""

    __slots__ = (
        "auth_alert",
        "breaker",
        "held_until",
        "key",
        "last_error",
        "last_outcome",
        "last_success",
        "no_prefill",
        "window",
    )

    def __init__(self, key: str, breaker: Breaker, window: OutcomeWindow) -> None:
        self.key = key
        self.breaker = breaker
        self.window = window
        self.held_until: float | None = None  # a 429 Retry-After asked us to wait until then
        self.last_error: str | None = None
        self.last_outcome: str | None = None  # of the last failure noted
        self.last_success: float | None = None
        self.auth_alert = False  # the key was refused (401/402/403); cleared by a success
        # it refused an assistant prefill: continue its streams with an instruction.  Not
        # news that keeps the record (``at_rest``): forgotten, it is learned again at the
        # cost of one refused attempt, and a {model} route cannot grow the registry with it
        self.no_prefill = False

    def is_held(self, now: float) -> bool:
        """Is a rate-limit hold still running?"""
        return self.held_until is not None and now < self.held_until

    def hold_until(self, until: float) -> None:
        """Keep the target out until ``until``; a shorter hold never cuts a longer one."""
        if self.held_until is None or until > self.held_until:
            self.held_until = until

    def available(self, now: float) -> bool:
        """Would ``admit(now)`` grant an attempt? Grants nothing (no trial is used up)."""
        return not self.is_held(now) and self.breaker.admissible(now)

    @property
    def at_rest(self) -> bool:
        """Nothing here that a fresh record would not also say (see ``HealthRegistry``)."""
        return self.breaker.at_rest and self.held_until is None and not self.auth_alert

    def admit(self, now: float) -> Admission | None:
        """Permission for one attempt, or ``None`` if held or the breaker refuses."""
        if self.is_held(now):
            return None
        return self.breaker.admit(now)

    def admit_probe(self, now: float, patience: float | None = None) -> Admission | None:
        """A probe's admission (``Breaker.admit_probe``), or ``None`` if held."""
        if self.is_held(now):
            return None
        return self.breaker.admit_probe(now, patience)

    def succeeded(self, now: float, admission: Admission | None = None) -> None:
        """The attempt produced a usable answer."""
        self.breaker.record_success(now, admission)
        self.window.add("ok", now)
        self.last_success = now
        self.auth_alert = False

    def failed(
        self, outcome: str, now: float, admission: Admission | None = None, error: str | None = None
    ) -> None:
        """The target failed (5xx, reset, malformed reply, broken stream…): counts toward
        opening the breaker."""
        self.breaker.record_failure(now, admission)
        self._note(outcome, now, error)

    def tripped(
        self, outcome: str, now: float, admission: Admission | None = None, error: str | None = None
    ) -> None:
        """The target failed in a way that should eject it at once (e.g. it went silent)."""
        self.breaker.trip(now, admission)
        self._note(outcome, now, error)

    def auth_failed(
        self, now: float, admission: Admission | None = None, error: str | None = None
    ) -> bool:
        """401/402/403. Returns ``True`` if this raised the auth alert (alert once)."""
        self.breaker.record_auth_failure(now, admission)
        self._note("auth", now, error)
        raised = not self.auth_alert
        self.auth_alert = True
        return raised

    def rate_limited(
        self,
        now: float,
        retry_after: float | None,
        admission: Admission | None = None,
        error: str | None = None,
    ) -> None:
        """429. Holds the target for ``retry_after`` seconds when given.

        It also counts as a breaker failure: a target that keeps refusing us is, for
        us, unavailable, and a 429 storm without Retry-After must not be hammered (F02).
        """
        if retry_after is not None:
            self.hold_until(now + retry_after)
        self.breaker.record_failure(now, admission)
        self._note("rate_limited", now, error)

    def rejected(self, outcome: str, now: float, admission: Admission | None = None) -> None:
        """The target is up but refused this request (context length, content policy…),
        or the attempt was abandoned: counted, the breaker is not moved, a trial freed."""
        if admission is not None:
            self.breaker.release(admission)
        self.window.add(outcome, now)

    def refused_prefill(self, now: float, admission: Admission | None = None) -> None:
        """The target refused an assistant prefill (F15): a fact about what it can do, not
        about its health (the breaker is not moved; a trial is freed)."""
        self.no_prefill = True
        self.rejected("prefill_rejected", now, admission)

    def snapshot(self, now: float) -> dict[str, Any]:
        """JSON-ready view; times are seconds relative to ``now``."""
        breaker = self.breaker
        state = breaker.state(now)
        until = breaker.open_until
        open_for = until - now if state == "open" and until is not None else 0.0
        held = self.held_until
        held_for = held - now if held is not None and now < held else 0.0
        success = self.last_success
        return {
            "state": state,
            "open_for": round(open_for, 3),
            "opened_count": breaker.opened_count,
            "consecutive_failures": breaker.consecutive_failures,
            "held_for": round(held_for, 3),
            "counts": self.window.counts(now),
            "last_error": self.last_error,
            "last_success_ago": None if success is None else round(now - success, 3),
            "auth_alert": self.auth_alert,
        }

    def _note(self, outcome: str, now: float, error: str | None) -> None:
        self.window.add(outcome, now)
        self.last_outcome = outcome
        if error is not None:
            self.last_error = error[:_MAX_ERROR]

    def __repr__(self) -> str:
        held = f" held_until={self.held_until:.2f}" if self.held_until is not None else ""
        alert = " auth_alert" if self.auth_alert else ""
        prefill = " no_prefill" if self.no_prefill else ""
        return f"<TargetHealth {self.key} {self.breaker!r}{held}{alert}{prefill}>"


class HealthRegistry:
    """One :class:`TargetHealth` per target key, created on first use.

    A route that passes the asked model through (``openai/{model}``) makes a new target
    for every name a client sends, so the number of records is bounded: past
    ``max_targets``, the oldest records at rest (closed, no failure, no hold) are
    forgotten to make room.  Records that carry news — an open breaker, a hold, a key
    alert — are never forgotten, so an outage cannot be flushed out by noise.
    """

    def __init__(
        self,
        config: BreakerConfig,
        *,
        window: float = 60.0,
        trial_timeout: float = 30.0,
        max_targets: int = 2048,
    ) -> None:
        self._config = config
        self._window = window
        self._trial_timeout = trial_timeout
        self._max_targets = max_targets
        self._targets: dict[str, TargetHealth] = {}

    def get(self, key: str) -> TargetHealth:
        """The health of ``key`` (``provider/model``), created on demand."""
        health = self._targets.get(key)
        if health is None:
            breaker = Breaker(
                self._config,
                trial_timeout=self._trial_timeout,
                forget_after=self._config.forget_after,
            )
            health = TargetHealth(key, breaker, OutcomeWindow(self._window))
            if len(self._targets) >= self._max_targets:
                self._forget_some()
            self._targets[key] = health
        return health

    def _forget_some(self) -> None:
        """Forget the oldest records at rest: up to a tenth of the bound at a time, so
        the scan is paid once per many new targets."""
        quota = max(1, self._max_targets // 10)
        for key in [k for k, h in self._targets.items() if h.at_rest][:quota]:
            del self._targets[key]

    def available(self, key: str, now: float) -> bool:
        """The breaker would admit ``key`` and no rate-limit hold is running."""
        return self.get(key).available(now)

    def hold_until(self, key: str, until: float) -> None:
        """Hold ``key`` out until ``until`` (from a 429's Retry-After)."""
        self.get(key).hold_until(until)

    def is_held(self, key: str, now: float) -> bool:
        """Is a rate-limit hold on ``key`` still running?"""
        return self.get(key).is_held(now)

    def refuses_prefill(self, key: str) -> bool:
        """Was ``key`` seen refusing an assistant prefill? (Creates no record.)"""
        health = self._targets.get(key)
        return health is not None and health.no_prefill

    def keys(self) -> list[str]:
        """Target keys seen so far, sorted."""
        return sorted(self._targets)

    def snapshot(self, now: float) -> dict[str, Any]:
        """JSON-ready health of every target, for ``GET /standby/health``."""
        return {
            "window": self._window,
            "targets": {key: self._targets[key].snapshot(now) for key in sorted(self._targets)},
        }

    def __repr__(self) -> str:
        return f"<HealthRegistry targets={len(self._targets)}>"
