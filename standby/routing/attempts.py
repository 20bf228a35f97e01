"""The attempt schedule of one request: which target next, and how long each try may take.

``AttemptSchedule`` decides; ``routing.driver.Attempts`` runs the tries it decides on, for
the non-streaming path and the stream engine alike.  The plan owns the request's budget
and the order of candidates, drops the candidates that cannot serve the request
(``screen``: no image input, no tools, too small a context — each recorded as a
``skipped_<reason>`` attempt of 0 s), asks the health gate before each try (skipping
open breakers and held targets, but never leaving a request with nothing to try), and
turns each failure into the next step with the verdict of ``outcomes.judge``: the same
target after a backoff, the same target after its Retry-After, or the next candidate
(another provider first).  No I/O and no waiting here: a step only says how long to
wait before it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from standby.canonical import Deadlines
from standby.errors import (
    CapacityShort,
    Exhausted,
    LocalLimit,
    Overloaded,
    ProviderError,
    Throttled,
    UpstreamStatus,
)
from standby.plan.model import Retry, Timeouts
from standby.plan.scale import Priority
from standby.routing.capabilities import Caps, Needs, refusal, unfit
from standby.routing.outcomes import Action, Effect, Verdict, judge
from standby.routing.policy import Target
from standby.routing.sink import Attempt

log = logging.getLogger("standby.routing")

Clock = Callable[[], float]
SKIPPED = "skipped_"  # outcome prefix of a candidate screened out before any try


class HealthGate(Protocol):
    """What the attempt loop needs from target health (breakers, rate-limit holds)."""

    def admit(self, key: str, now: float) -> object | None:
        """A token to try ``key`` now, or ``None`` when its breaker or a hold refuses."""
        ...

    def responded(self, key: str, token: object, now: float) -> None:
        """The attempt's first byte arrived (headers of a stream, or a whole reply)."""
        ...

    def succeeded(self, key: str, token: object, now: float, seconds: float) -> None: ...

    def abandoned(self, key: str, token: object, now: float) -> None:
        """An admitted try will not happen or report (cancelled, or no longer needed)."""
        ...

    def trial_deadline(self, key: str, token: object) -> float | None:
        """For a half-open trial: how long a healthy first byte may take (None: no limit)."""
        ...

    def refuses_prefill(self, key: str) -> bool:
        """The target was seen refusing an assistant prefill (F15): continue it with an
        instruction instead."""
        ...

    def failed(
        self,
        key: str,
        token: object,
        now: float,
        verdict: Verdict,
        error: ProviderError,
        seconds: float,
    ) -> None: ...


@dataclass(slots=True)
class AttemptRecord:
    """One try (or one screened-out candidate: ``skipped_<reason>``, 0 s) of a target."""

    target: str
    outcome: str
    seconds: float
    mid_answer: bool = False  # a stream broke after the client had received some of it


def journal_attempts(history: Sequence[AttemptRecord]) -> list[Attempt]:
    """The attempt history as the journal stores it: ``(target, outcome, seconds)``, and
    ``"mid_answer"`` after a stream's try that broke once the client had some of it."""
    return [
        (r.target, r.outcome, round(r.seconds, 6), MID_ANSWER)
        if r.mid_answer
        else (r.target, r.outcome, round(r.seconds, 6))
        for r in history
    ]


MID_ANSWER = "mid_answer"


@dataclass(slots=True)
class Step:
    """The next try: a target, the token its gate gave, and a wait before it.

    A step with a ``delay`` (a backoff, a Retry-After) is admitted by the gate again once
    the wait is over (``AttemptSchedule.waited``); ``token`` is what it holds until then.
    ``prefill``: the try continues a trailing assistant message (set by whoever builds
    the call), so that a refusal is judged as one.
    """

    target: Target
    token: object
    delay: float = 0.0
    prefill: bool = False


@dataclass(slots=True)
class AttemptSchedule:
    candidates: list[Target]
    gate: HealthGate
    timeouts: Timeouts
    retry: Retry
    clock: Clock
    rng: random.Random
    started: float = 0.0
    history: list[AttemptRecord] = field(default_factory=list)
    last_error: ProviderError | None = None
    _failed_providers: set[str] = field(default_factory=set)
    _same_tries: int = 0
    _forced: bool = False  # one try of an ejected target already spent
    _rate_waits: int = 0  # Retry-After waits spent on this request
    refused_prefill: tuple[str, ...] = ()  # targets that refused a prefill in this request
    _rate_limited: tuple[Target, float] | None = None  # soonest rate-limited target, ready at
    _current: Step | None = None  # admitted and not yet reported
    screened: bool = False  # the candidates were checked against the request's needs
    _skipped: int = 0  # history records of screened-out candidates (not attempts)
    priority: Priority = "normal"  # the client's, for targets' capacity (``capacity``)
    _short: CapacityShort | None = None  # a target left out for capacity, soonest ready

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def attempts(self) -> int:
        """Tries made so far (screened-out candidates are in ``history`` but not counted)."""
        return len(self.history) - self._skipped

    def screen(self, need: Needs, route: str) -> None:
        """Drop the candidates that cannot serve ``need``, recording why.

        Raises a 400 ``InvalidRequest`` when no candidate is left: the request itself asks
        for something no target of the route offers, so no retry could help.
        """
        self.screened = True
        kept: list[Target] = []
        skipped: list[tuple[str, Caps, str]] = []
        for target in self.candidates:
            reason = unfit(target.caps, need)
            if reason is None:
                kept.append(target)
                continue
            log.debug("route %s: skipping %s (%s)", route, target.key, reason)
            skipped.append((target.key, target.caps, reason))
            self.history.append(AttemptRecord(target.key, SKIPPED + reason, 0.0))
        if not skipped:
            return
        self._skipped += len(skipped)
        if not kept:
            raise refusal(route, skipped, need)
        self.candidates = kept

    def remaining(self) -> float:
        return self.timeouts.total - (self.clock() - self.started)

    def deadlines_for(self, t: Timeouts, step: Step | None = None) -> Deadlines:
        """Per-attempt deadlines (``t``: this target's timeouts), clipped to the budget.

        A half-open trial gets a first-token deadline near what the target usually needs
        (the gate says): a trial against a still-silent target then costs its caller
        about a second, not the whole ``first_token``.
        """
        left = max(0.001, self.remaining())
        first_token = t.first_token
        if (
            step is not None
            and (usual := self.gate.trial_deadline(step.target.key, step.token)) is not None
        ):
            first_token = min(first_token, max(usual, 1.0))
        return Deadlines(
            connect=min(t.connect, left), first_token=min(first_token, left), idle=min(t.idle, left)
        )

    def first(self) -> Step:
        step = self._pick()
        if step is None:
            raise self.exhausted()
        self._current = step
        return step

    def waited(self, step: Step) -> None:
        """``step``'s wait is over: ask the gate again, so the try holds a fresh token (a
        new silence ticket, the breaker's current epoch); if the gate refuses, the step
        keeps the token it had and is tried anyway (it was chosen within the budget)."""
        token = self.gate.admit(step.target.key, self.clock())
        if token is not None:
            step.token = token

    def abandon(self) -> None:
        """The admitted step will not be tried or will not report: free what it holds."""
        step, self._current = self._current, None
        if step is not None:
            self.gate.abandoned(step.target.key, step.token, self.clock())

    def responded(self, step: Step) -> None:
        self.gate.responded(step.target.key, step.token, self.clock())

    def succeeded(self, step: Step, seconds: float) -> None:
        self._current = None
        self.history.append(AttemptRecord(step.target.key, "ok", seconds))
        self.gate.succeeded(step.target.key, step.token, self.clock(), seconds)

    def failed(
        self, step: Step, error: ProviderError, seconds: float, *, mid_answer: bool = False
    ) -> Step:
        """Record a failure and return the next step, or raise the error / ``Exhausted``;
        ``mid_answer``: a stream broke after the client had received some of it."""
        self._current = None
        nxt = self._after_failure(step, error, seconds, mid_answer)
        self._current = nxt
        return nxt

    def _after_failure(
        self, step: Step, error: ProviderError, seconds: float, mid_answer: bool = False
    ) -> Step:
        error.target = error.target or step.target.key
        verdict = judge(
            error,
            same_target_tries=self._same_tries,
            max_same_target=self.retry.same_target,
            prefill=step.prefill,
            prefer_same_target=self.retry.prefer_same_target,
        )
        self.history.append(AttemptRecord(step.target.key, verdict.label, seconds, mid_answer))
        self.gate.failed(step.target.key, step.token, self.clock(), verdict, error, seconds)
        if isinstance(error, CapacityShort):
            # not a try (no retry budget spent); and the request has an honest answer
            # now (a 429, or a deferral), so no ejected target is forced for it
            self._skipped += 1
            self._forced = True
            if self._short is None or error.retry_after < self._short.retry_after:
                self._short = error
        if not verdict.local or self.last_error is None or isinstance(self.last_error, LocalLimit):
            # Standby's own limit is the cause only when nothing else failed (LocalLimit)
            self.last_error = error
        if verdict.action is Action.FINAL:
            raise error
        if self.attempts >= self.retry.max_attempts or self.remaining() <= 0:
            raise self.exhausted()
        if verdict.no_prefill:  # F15: at once, and from now on with an instruction
            self.refused_prefill += (step.target.key,)
            token = self.gate.admit(step.target.key, self.clock())
            return Step(step.target, step.token if token is None else token)
        if verdict.action is Action.WAIT_SAME:
            wait = self._wait_same(step, error)
            if wait is not None:
                return wait
        if verdict.action is Action.RETRY_SAME:
            self._same_tries += 1
            delay = self._backoff()
            if delay < self.remaining():
                return Step(step.target, step.token, delay)
        self._same_tries = 0
        self._failed_providers.add(step.target.provider)
        if verdict.skip_model:
            self.candidates = [c for c in self.candidates if c.model != step.target.model]
            if not self.candidates:
                raise error  # F13: no larger model left; the provider's 400 says why
        self._note_rate_limit(step, verdict, error)
        nxt = self._pick()
        if nxt is not None:
            return nxt
        wait = self._rate_limit_wait()
        if wait is not None:  # F01: nothing else can serve; a Retry-After fits the budget
            return wait
        raise self.exhausted()

    def _pick(self) -> Step | None:
        now = self.clock()
        fresh = [c for c in self.candidates if c.provider not in self._failed_providers]
        for group in (fresh, self.candidates):
            for target in group:
                token = self.gate.admit(target.key, now)
                if token is not None:
                    self.candidates.remove(target)
                    return Step(target, token)
        if self.candidates and not self._forced:
            # every remaining target is ejected: never leave the request with nothing
            self._forced = True
            return Step(self.candidates.pop(0), None)
        return None

    def _backoff(self) -> float:
        cap = min(self.retry.max_backoff, self.retry.backoff * (2 ** (self._same_tries - 1)))
        return self.rng.uniform(cap / 2, cap)  # jittered; never zero, never hammer

    def _note_rate_limit(self, step: Step, verdict: Verdict, error: ProviderError) -> None:
        """Remember the soonest a rate-limited target said it would serve again."""
        if verdict.effect is not Effect.RATE_LIMITED or not isinstance(error, UpstreamStatus):
            return
        wait = error.retry_after if error.retry_after is not None else self._backoff()
        if wait > self.retry.max_retry_after:
            return
        ready = self.clock() + wait
        if self._rate_limited is None or ready < self._rate_limited[1]:
            self._rate_limited = (step.target, ready)

    def _rate_waits_left(self) -> bool:
        return self._rate_waits < max(1, self.retry.same_target)

    def _wait_same(self, step: Step, error: ProviderError) -> Step | None:
        """``retry.prefer_same_target``: wait out the target's Retry-After when it fits
        ``max_retry_after`` and the budget, rather than fail over (None: it does not)."""
        wait = error.retry_after if isinstance(error, UpstreamStatus) else None
        if (
            wait is None
            or wait > self.retry.max_retry_after
            or wait >= self.remaining()
            or not self._rate_waits_left()
        ):
            return None
        self._rate_waits += 1
        return Step(step.target, None, wait)

    def _rate_limit_wait(self) -> Step | None:
        if self._rate_limited is None or not self._rate_waits_left():
            return None
        target, ready = self._rate_limited
        wait = max(0.0, ready - self.clock())
        if wait >= self.remaining():
            return None
        self._rate_waits += 1
        self._rate_limited = None
        return Step(target, None, wait)

    def exhausted(self) -> Exhausted:
        retry_after = 1.0
        if isinstance(self.last_error, UpstreamStatus) and self.last_error.retry_after:
            retry_after = self.last_error.retry_after
        tried = ", ".join(f"{r.target}: {r.outcome}" for r in self.history) or "none available"
        if self._short is not None:
            # some target could have answered but for its capacity: a 429, not a 503
            return Throttled(
                f"no target could answer ({tried})",
                retry_after=self._short.retry_after,
                last=self.last_error,
            )
        if isinstance(self.last_error, LocalLimit):
            # kept only while nothing else failed: every try met a limit of Standby's own
            return Overloaded(
                f"no target could answer ({tried})", retry_after=retry_after, last=self.last_error
            )
        return Exhausted(
            f"no target could answer ({tried})", retry_after=retry_after, last=self.last_error
        )
