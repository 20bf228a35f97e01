"""Per-target circuit breaker: a pure state machine with an injected clock.

    closed ──(N consecutive failures │ trip │ auth failure)──▶ open
    open ──(ejection period over; decided lazily by ``now``)──▶ half_open
    half_open ──(the one trial succeeds)──▶ closed
    half_open ──(the trial fails)──▶ open for min(previous * growth, max_ejection)
    open ──(a probe's trial, ``admit_probe``, succeeds)──▶ closed, before the period ends
    any counted auth failure ──▶ open for auth_ejection
    closed │ open ──(``follow``: another replica opened it)──▶ open, *following*
    open │ half_open ──(``lift``: another replica's trial succeeded)──▶ closed

Every call takes ``now``, seconds on a monotonic clock; nothing here reads the time,
sleeps or does I/O, so tests drive it with plain numbers.

Concurrency: many attempts are in flight at once and report after the breaker has
moved on. Each state change starts a new *epoch*. ``admit()`` hands out an
:class:`Admission` stamped with the current epoch, and a report moves the breaker only
if its admission belongs to the current epoch. So failures of attempts admitted before
the breaker opened cannot extend the ejection, and late failures of attempts admitted
before a half-open trial succeeded cannot reopen it. Granting a trial also starts an
epoch, so a lost trial that reports after a replacement was granted is ignored.

The ``record_*`` methods accept ``admission=None`` as a convenience: the report is then
taken as coming from the current epoch (the closed period, or the outstanding trial),
and is ignored while open with no trial out.

Replicas of one gateway (``cluster.health``) keep one breaker per target each, and make
them act as one: failures another replica saw count toward opening
(``add_peer_failures``), though only a failure seen here opens, so the replica that opens
a breaker is one that met the failure; the others *follow* its opening (``follow``: open
until its end, plus a grace), so only the opener tries the target when the ejection
ends, and they follow its verdict (``follow`` again, or ``lift``).  A follower that
hears nothing more (the opener is gone) tries the target itself when its period ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from standby.plan.model import BreakerConfig

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class Admission:
    """Permission for one attempt, stamped with the epoch of the breaker that granted it."""

    epoch: int
    trial: bool = False


class Breaker:
    """Circuit breaker of one target. Not thread-safe: use it from one event loop."""

    __slots__ = (
        "_admission",
        "_closed_since",
        "_config",
        "_epoch",
        "_failures",
        "_following",
        "_forget_after",
        "_last_ejection",
        "_open_until",
        "_opened",
        "_trial_at",
        "_trial_timeout",
    )

    def __init__(
        self,
        config: BreakerConfig,
        *,
        trial_timeout: float = 30.0,
        forget_after: float | None = None,
    ) -> None:
        """``forget_after``: closed time after which ejection growth starts over
        (default ``config.max_ejection``)."""
        self._config = config
        self._trial_timeout = trial_timeout
        self._forget_after = config.max_ejection if forget_after is None else forget_after
        self._epoch = 0
        self._admission = Admission(0)  # shared by every attempt admitted while closed
        self._failures = 0
        self._opened = 0
        self._open_until: float | None = None
        self._trial_at: float | None = None  # when the outstanding half-open trial was granted
        self._last_ejection: float | None = None  # None: the next opening uses config.ejection
        self._closed_since = 0.0
        self._following = False  # open because another replica opened it (``follow``)

    # -- queries ---------------------------------------------------------------------

    def state(self, now: float) -> State:
        """``closed``, ``open`` (ejection running) or ``half_open`` (ejection over)."""
        if self._open_until is None:
            return "closed"
        return "open" if now < self._open_until else "half_open"

    @property
    def at_rest(self) -> bool:
        """Closed with no failure counted and no growth to remember: forgetting this
        breaker and making a new one later changes nothing."""
        return self._open_until is None and self._failures == 0 and self._last_ejection is None

    def admissible(self, now: float) -> bool:
        """Would ``admit(now)`` grant an attempt? Grants nothing."""
        if self._open_until is None:
            return True
        if now < self._open_until:
            return False
        return self._trial_at is None or now >= self._trial_at + self._trial_timeout

    def current(self, admission: Admission) -> bool:
        """Would a report from this admission still move the breaker?"""
        return admission.epoch == self._epoch

    @property
    def opened_count(self) -> int:
        """How many times the breaker has opened, ever."""
        return self._opened

    @property
    def open_until(self) -> float | None:
        """End of the current or last ejection; ``None`` while closed."""
        return self._open_until

    @property
    def consecutive_failures(self) -> int:
        """Counted failures since the last counted success."""
        return self._failures

    @property
    def following(self) -> bool:
        """Open because another replica opened it (``follow``), not by an outcome here."""
        return self._following and self._open_until is not None

    # -- admission -------------------------------------------------------------------

    def admit(self, now: float) -> Admission | None:
        """Permission for one attempt, or ``None`` while open or while a trial is out.

        Closed: always granted. Half-open: exactly one trial is granted; another only
        once the trial reported, was released, or is older than ``trial_timeout``.
        """
        if self._open_until is None:
            return self._admission
        if not self.admissible(now):
            return None
        self._new_epoch()
        self._trial_at = now
        return Admission(self._epoch, trial=True)

    def admit_probe(self, now: float, patience: float | None = None) -> Admission | None:
        """A probe's admission: what ``admit`` grants, and while the ejection runs, a
        trial out of turn.  A probe costs next to nothing, so it, rather than a customer's
        request once the ejection is over, is what finds a recovered target: its success
        closes the breaker at once; its failure re-opens it like any failed trial.

        ``patience``: a trial out for longer than this (a probe or a request stuck on a
        slow provider), open or half-open, no longer blocks a probe's trial; the new
        trial's epoch makes the old one's report moot.
        """
        if self._open_until is None:
            return self._admission
        wait = self._trial_timeout if patience is None else min(patience, self._trial_timeout)
        if self._trial_at is not None and now < self._trial_at + wait:
            return None  # a trial is out already
        self._new_epoch()
        self._trial_at = now
        return Admission(self._epoch, trial=True)

    def allow(self, now: float) -> bool:
        """``admit(now) is not None``, for callers that report with ``admission=None``."""
        return self.admit(now) is not None

    def release(self, admission: Admission) -> None:
        """The attempt ended with no verdict on the target (cancelled, client error).

        A released trial frees the half-open slot at once instead of after
        ``trial_timeout``; any other admission needs no release.
        """
        if admission.trial and self._accepts(admission) and self._trial_at is not None:
            self._trial_at = None
            self._new_epoch()

    # -- reports ---------------------------------------------------------------------

    def record_success(self, now: float, admission: Admission | None = None) -> None:
        """Closed: reset the failure count. Half-open trial: close."""
        if not self._accepts(admission):
            return
        self._failures = 0
        if self._open_until is not None:
            self._open_until = None
            self._trial_at = None
            self._following = False
            self._closed_since = now
            self._new_epoch()

    def record_failure(self, now: float, admission: Admission | None = None) -> None:
        """Count a failure; open at ``config.failures`` in a row, or when a trial fails."""
        if not self._accepts(admission):
            return
        self._failures += 1
        if self._open_until is not None or self._failures >= self._config.failures:
            self._open(now, self._next_ejection(now), grows=True)

    def trip(self, now: float, admission: Admission | None = None) -> None:
        """Open at once (e.g. a silent target timed out), with the usual growth."""
        if not self._accepts(admission):
            return
        self._failures += 1
        self._open(now, self._next_ejection(now), grows=True)

    def record_auth_failure(self, now: float, admission: Admission | None = None) -> None:
        """401/402/403: the key is bad or exhausted; open at once for ``auth_ejection``.

        The auth period stays outside the growth chain: a later 5xx ejection grows
        from the last 5xx ejection, not from the (much longer) auth one.
        """
        if not self._accepts(admission):
            return
        self._failures += 1
        self._forget_if_clean(now)
        self._open(now, self._config.auth_ejection, grows=False)

    # -- other replicas (``cluster.health``) -------------------------------------------

    def add_peer_failures(self, failures: int, *, reset: bool = False) -> None:
        """Failures another replica saw (after a success there, when ``reset``): while
        closed they count toward ``config.failures`` like ours, but never open the breaker
        themselves: the next failure seen here does."""
        if self._open_until is not None:
            return
        if reset:
            self._failures = 0
        self._failures += max(0, failures)

    def follow(self, now: float, until: float, period: float | None = None) -> bool:
        """Another replica opened its breaker until ``until`` (this clock; its end plus a
        grace): be open until then, in a new epoch, with no trial of our own before it
        ends.  ``period``: the opener's ejection, from which a later ejection of ours
        grows.  An ejection of our own that ends later is kept (the other replica will
        follow it).  Returns whether anything changed."""
        if until <= now:
            return False
        if self._open_until is not None and until <= self._open_until:
            return False  # ours (or the one we follow) lasts as long already
        if self._open_until is None:
            self._opened += 1
        self._open_until = until
        self._trial_at = None
        self._following = True
        if period is not None:
            self._last_ejection = min(period, self._config.max_ejection)
        self._new_epoch()
        return True

    def lift(self, now: float) -> bool:
        """Another replica's trial of the target succeeded: close, as our own trial's
        success would.  Returns whether the breaker was open."""
        if self._open_until is None:
            return False
        self._failures = 0
        self._open_until = None
        self._trial_at = None
        self._following = False
        self._closed_since = now
        self._new_epoch()
        return True

    # -- internals -------------------------------------------------------------------

    def _accepts(self, admission: Admission | None) -> bool:
        if admission is not None:
            return admission.epoch == self._epoch
        return self._open_until is None or self._trial_at is not None

    def _forget_if_clean(self, now: float) -> None:
        # Growth is forgotten after a clean closed period, not on the first successful
        # trial: a flapping target that passes one trial and falls again at once keeps
        # its longer ejection, so it is not hammered every `ejection` seconds (F16).
        if self._open_until is None and now - self._closed_since >= self._forget_after:
            self._last_ejection = None

    def _next_ejection(self, now: float) -> float:
        cfg = self._config
        self._forget_if_clean(now)
        if self._last_ejection is None:
            return min(cfg.ejection, cfg.max_ejection)
        return min(self._last_ejection * cfg.growth, cfg.max_ejection)

    def _open(self, now: float, period: float, *, grows: bool) -> None:
        if grows:
            self._last_ejection = period
        self._open_until = now + period
        self._trial_at = None
        self._following = False
        self._opened += 1
        self._new_epoch()

    def _new_epoch(self) -> None:
        self._epoch += 1
        self._admission = Admission(self._epoch)

    def __repr__(self) -> str:
        if self._open_until is None:
            head = "closed"
        else:
            head = f"open until={self._open_until:.2f}"
            if self._following:
                head += " following"
            if self._trial_at is not None:
                head += f" trial_at={self._trial_at:.2f}"
        return (
            f"<Breaker {head} ejections={self._opened} failures={self._failures} "
            f"epoch={self._epoch}>"
        )
