"""The incident detector: signals in, incident transitions out.  Pure, with ``now`` passed in.

Every ``evaluate_every`` seconds each component (a target ``provider/model``, or a route)
is judged from its signals (``judge``): **bad** (its fast window burns errors at
``fast_error_rate`` or more; or both windows at ``slow_error_rate`` or more, a slow burn
that is still burning; two probes in a row failed; or its p99 latency is over the plan's
limit), **ok** (a success in the fast
window and nothing bad), or **unknown** (no evidence either way: no traffic, or a breaker
keeping traffic away).  Hysteresis turns judgements into transitions:

* ``open_after`` bad judgements in a row open an incident (a blip shorter than that opens
  nothing, however many requests it fails);
* while open, the first ok judgement moves it to monitoring, a bad one back to
  investigating;
* ``resolve_after`` ok judgements in a row resolve it.  Unknown judgements neither count
  nor break a streak, so an incident stays open while nothing can show that it is over.

A route is bad when every one of its targets is bad (nothing can serve it), ok when one of
them is ok.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from standby.plan.alerts import Detect
from standby.watch.signals import WindowStats


class Judgement(StrEnum):
    OK = "ok"
    BAD = "bad"
    UNKNOWN = "unknown"


class Severity(StrEnum):
    MAJOR = "major"  # failing: requests fail or fail over
    MINOR = "minor"  # degraded: a slow burn, or slow


@dataclass(frozen=True, slots=True)
class Verdict:
    judgement: Judgement
    severity: Severity = Severity.MAJOR
    reason: str = ""


def judge(fast: WindowStats, slow: WindowStats, probe_failures: int, config: Detect) -> Verdict:
    """One component's judgement from its two windows and its probes."""
    if fast.events >= config.min_events and fast.error_rate >= config.fast_error_rate:
        return Verdict(
            Judgement.BAD,
            Severity.MAJOR,
            f"{fast.failures} of {fast.events} attempts failed in the last {fast.span:g}s"
            + (f" ({fast.timeouts} timed out)" if fast.timeouts else ""),
        )
    if probe_failures >= 2:
        return Verdict(Judgement.BAD, Severity.MAJOR, f"the last {probe_failures} probes failed")
    if (
        slow.events >= config.slow_min_events
        and slow.error_rate >= config.slow_error_rate
        and fast.events >= config.min_events
        and fast.error_rate >= config.slow_error_rate
    ):  # a slow burn that is still burning (the fast window lets it resolve quickly)
        return Verdict(
            Judgement.BAD,
            Severity.MINOR,
            f"{slow.failures} of {slow.events} attempts failed in the last {slow.span:g}s",
        )
    if (
        config.latency_p99 is not None
        and fast.events >= config.min_events
        and fast.latency_p99 is not None
        and fast.latency_p99 > config.latency_p99
    ):
        return Verdict(
            Judgement.BAD,
            Severity.MINOR,
            f"p99 latency {fast.latency_p99 * 1000:.0f} ms over {config.latency_p99 * 1000:.0f} ms",
        )
    if fast.last_ok is not None:
        return Verdict(Judgement.OK)
    return Verdict(Judgement.UNKNOWN)


def judge_route(targets: list[Verdict]) -> Verdict:
    """A route's judgement from its targets'."""
    if targets and all(v.judgement is Judgement.BAD for v in targets):
        return Verdict(Judgement.BAD, Severity.MAJOR, "every target of the route is failing")
    if any(v.judgement is Judgement.OK for v in targets):
        return Verdict(Judgement.OK)
    return Verdict(Judgement.UNKNOWN)


class Change(StrEnum):
    OPENED = "opened"
    MONITORING = "monitoring"  # signals look good again; not yet resolved
    RELAPSED = "relapsed"  # bad again while monitoring
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Transition:
    component: str
    change: Change
    at: float
    verdict: Verdict


@dataclass(slots=True)
class _Track:
    bad: int = 0  # bad judgements in a row
    good: int = 0  # ok judgements in a row
    open: bool = False
    monitoring: bool = False
    first_bad_at: float | None = None  # the first bad judgement of the current streak


class Detector:
    """Hysteresis over judgements, per component."""

    def __init__(self, config: Detect) -> None:
        self.config = config
        self._tracks: dict[str, _Track] = {}

    def is_open(self, component: str) -> bool:
        track = self._tracks.get(component)
        return track is not None and track.open

    def first_bad_at(self, component: str) -> float | None:
        track = self._tracks.get(component)
        return None if track is None else track.first_bad_at

    def observe(self, component: str, verdict: Verdict, now: float) -> Transition | None:
        """One judgement of ``component``; the transition it causes, if any."""
        track = self._tracks.get(component)
        if track is None:
            if verdict.judgement is not Judgement.BAD:
                return None  # nothing to remember about a healthy component
            track = self._tracks[component] = _Track()
        if verdict.judgement is Judgement.BAD:
            track.good = 0
            if track.bad == 0 and not track.open:
                track.first_bad_at = now
            track.bad += 1
            if not track.open and track.bad >= self.config.open_after:
                track.open, track.monitoring = True, False
                return Transition(component, Change.OPENED, now, verdict)
            if track.open and track.monitoring:
                track.monitoring = False
                return Transition(component, Change.RELAPSED, now, verdict)
            return None
        if verdict.judgement is Judgement.UNKNOWN:
            return None
        track.bad = 0
        if not track.open:
            del self._tracks[component]  # a blip that never opened anything: forgotten
            return None
        track.good += 1
        if track.good >= self.config.resolve_after:
            del self._tracks[component]
            return Transition(component, Change.RESOLVED, now, verdict)
        if not track.monitoring:
            track.monitoring = True
            return Transition(component, Change.MONITORING, now, verdict)
        return None

    def close(self, component: str) -> None:
        """Forget ``component``'s state (its incident was resolved by hand)."""
        self._tracks.pop(component, None)
