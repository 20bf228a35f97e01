"""A post-outage report: what happened, what customers felt, and what to change — every
figure computed from the journal, every sentence derived from those figures.

The sections follow the Google SRE postmortem (summary, impact, detection, response,
recovery, timeline, root cause, what went well and badly, action items).  The model is
plain frozen data: ``reports.build`` makes it, the renderers (``reports.markdown``,
``reports.html``, ``Report.as_dict`` for JSON) only lay it out.

Times are Unix seconds (UTC); durations seconds; latencies milliseconds; ``None`` where
the journal does not know (no request in the window, no notification sent, …).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Bucket:
    """One slice of the window for the charts (a minute, or more for long windows)."""

    at: float  # the slice's start
    requests: int  # requests received in it
    failed: int  # of those, failed (a client's own 4xx is not counted)
    p50_ms: float | None  # latency of the answered ones
    p99_ms: float | None
    served_by: dict[str, int] = field(default_factory=dict)  # target → answers


@dataclass(frozen=True, slots=True)
class TargetFigures:
    """What one target (``provider/model``) did in the window."""

    target: str
    role: str  # "primary" (first in its route) | "fallback"
    served: int  # requests it answered
    prompt_tokens: int
    completion_tokens: int
    cost: float | None  # at the plan's prices; None: the plan has no price for it


@dataclass(frozen=True, slots=True)
class ClientFigures:
    """One client (its name in the plan's ``server.client_keys``; "" for an open gateway)."""

    client: str
    requests: int
    failed: int
    failed_over: int  # answered, but by another target than the one first tried


@dataclass(frozen=True, slots=True)
class Latency:
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True, slots=True)
class Impact:
    """What the window's requests met."""

    requests: int
    answered: int
    answered_by_primary: int
    answered_by_fallback: int
    failed: int
    failed_by_class: dict[str, int]  # the last attempt's error class → requests
    client_errors: int  # the caller's own mistakes (4xx): not the outage's
    client_gone: int  # callers that left before the answer ended
    deferred: int  # accepted for later (no target could answer then)
    deferred_completed: int  # … and answered since
    streams: int
    streams_continued: int  # broke mid-answer and were finished by another target
    failed_over: int  # answered after a failed attempt on another target
    latency: Latency  # of the answered requests in the window
    baseline: Latency  # the same hours of the previous 7 days
    targets: list[TargetFigures]
    cost: float | None  # all targets' cost at the plan's prices
    cost_delta: float | None  # fallbacks' cost minus the same tokens on the primary
    clients: list[ClientFigures]

    @property
    def added(self) -> Latency:
        """The window's latency minus the baseline's."""

        def minus(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a - b

        return Latency(
            minus(self.latency.p50_ms, self.baseline.p50_ms),
            minus(self.latency.p99_ms, self.baseline.p99_ms),
        )

    @property
    def fallback_share(self) -> float | None:
        """Of the requests the primary did not answer, the share a fallback answered."""
        missed = self.answered_by_fallback + self.failed
        return None if missed == 0 else self.answered_by_fallback / missed


@dataclass(frozen=True, slots=True)
class Timings:
    """Seconds, measured from the first failure Standby saw (or the window's start)."""

    duration: float | None  # first failure → resolved (or the window's end)
    to_detect: float | None  # → the incident opened
    to_failover: float | None  # → the first request answered by a fallback
    to_notify: float | None  # → the first notification delivered
    to_recover: float | None  # → the primary answered again
    provider_lag: float | None  # the provider's page declared it this long after detection


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the timeline."""

    at: float
    kind: str  # the incident event's kind, or "traffic" for what the journal shows
    text: str


@dataclass(frozen=True, slots=True)
class RootCause:
    """The provider's own words where it published any, else what Standby observed."""

    published: bool
    provider: str  # the provider whose targets failed ("" when none is known)
    name: str  # the provider's incident name, or ""
    url: str
    updates: list[Entry]  # the provider's updates, oldest first
    observed: dict[str, int]  # error classes seen on the failing targets → attempts


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    incident_id: str | None  # None: a report over a window with no incident
    component: str  # what the incident was about (``route:…``, ``target:…``), or ""
    severity: str
    status: str
    start: float  # the window the figures cover
    end: float
    generated_at: float
    summary: str
    impact: Impact
    timings: Timings
    timeline: list[Entry]
    root_cause: RootCause
    went_well: list[str]
    went_badly: list[str]
    actions: list[str]
    series: list[Bucket]
    bucket_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``--format json``)."""
        data = asdict(self)
        data["impact"]["added"] = asdict(self.impact.added)
        data["impact"]["fallback_share"] = self.impact.fallback_share
        return data


def report_from_dict(data: dict[str, Any]) -> Report:
    """A report kept as ``Report.as_dict()`` (a drill's, in the journal), back as one."""
    impact = dict(data["impact"])
    impact.pop("added", None)
    impact.pop("fallback_share", None)
    impact["latency"] = Latency(**impact["latency"])
    impact["baseline"] = Latency(**impact["baseline"])
    impact["targets"] = [TargetFigures(**t) for t in impact["targets"]]
    impact["clients"] = [ClientFigures(**c) for c in impact["clients"]]
    root = dict(data["root_cause"])
    root["updates"] = [Entry(**e) for e in root["updates"]]
    return Report(
        **{
            **data,
            "impact": Impact(**impact),
            "timings": Timings(**data["timings"]),
            "timeline": [Entry(**e) for e in data["timeline"]],
            "root_cause": RootCause(**root),
            "series": [Bucket(**b) for b in data["series"]],
        }
    )
