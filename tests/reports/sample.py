"""Reports built by hand for the renderers' tests: a 40-minute OpenAI outage on route
``gpt-4o-mini`` (primary ``openai/gpt-4o-mini``, fallback ``anthropic/claude-3-5-haiku``)
seen over an hour of one-minute buckets, with the provider's own incident published;
the same outage when the provider published nothing; and a window with no traffic at all.

The figures add up the way the journal's would: the totals are the series' sums, and the
costs are the tokens at the providers' list prices.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from standby.reports.model import (
    Bucket,
    ClientFigures,
    Entry,
    Impact,
    Latency,
    Report,
    RootCause,
    TargetFigures,
    Timings,
)

PRIMARY = "openai/gpt-4o-mini"
FALLBACK = "anthropic/claude-3-5-haiku"
START = datetime(2026, 11, 18, 13, 50, tzinfo=UTC).timestamp()
MINUTE = 60.0
BUCKETS = 60
OUTAGE = range(10, 50)  # 14:00 to 14:39
PROMPT_TOKENS = 412  # per answered request
COMPLETION_TOKENS = 187
PRICES = {  # per million tokens: prompt, completion
    PRIMARY: (0.15, 0.60),
    FALLBACK: (0.80, 4.00),
}


def _bucket(i: int) -> Bucket:
    """Minute ``i`` of the window: ~200 requests, a client error every sixth minute."""
    requests = 190 + (i * 7) % 23
    client_errors = 1 if i % 6 == 0 else 0
    if i not in OUTAGE:
        answered = requests - client_errors
        return Bucket(
            at=START + i * MINUTE,
            requests=requests,
            failed=0,
            p50_ms=610.0 + (i * 13) % 40,
            p99_ms=1850.0 + (i * 37) % 200,
            served_by={PRIMARY: answered},
        )
    if i == 10:  # the first minute: timeouts until the breaker opened
        failed, primary, p50, p99 = 118, 24, 1320.0, 30050.0
    elif i == 11:
        failed, primary, p50, p99 = 31, 0, 1410.0, 9800.0
    elif i in (48, 49):  # the breaker's trials let the primary back in
        failed, primary, p50, p99 = 0, 80 if i == 48 else 150, 900.0, 3100.0
    else:
        failed, primary = (1 if i % 4 == 0 else 0), 0
        p50, p99 = 1180.0 + (i * 11) % 90, 3900.0 + (i * 53) % 600
    fallback = requests - client_errors - failed - primary
    served = {PRIMARY: primary, FALLBACK: fallback} if primary else {FALLBACK: fallback}
    return Bucket(START + i * MINUTE, requests, failed, p50, p99, served)


def _cost(target: str, served: int) -> float:
    prompt, completion = PRICES[target]
    return round(served * (PROMPT_TOKENS * prompt + COMPLETION_TOKENS * completion) / 1e6, 6)


def _timeline() -> list[Entry]:
    def at(minute: int, second: int) -> float:
        return START + minute * MINUTE + second

    return [
        Entry(at(10, 7), "traffic", f"First failed request: {PRIMARY} timed out (first token)"),
        Entry(at(10, 10), "traffic", f"First request answered by {FALLBACK} (failed over)"),
        Entry(at(10, 19), "opened", "Incident opened on route:gpt-4o-mini (major)"),
        Entry(at(10, 48), "notified", "PagerDuty: on-call paged (delivered)"),
        Entry(at(19, 19), "official", "OpenAI status page: Elevated error rates on the API"),
        Entry(at(48, 7), "traffic", f"{PRIMARY} answered again (breaker trial)"),
        Entry(at(50, 0), "resolved", "Incident resolved: 3 min without a failure"),
    ]


def outage() -> Report:
    """The outage, with the provider's incident published (three updates)."""
    series = [_bucket(i) for i in range(BUCKETS)]
    served = {
        target: sum(b.served_by.get(target, 0) for b in series) for target in (PRIMARY, FALLBACK)
    }
    requests = sum(b.requests for b in series)
    failed = sum(b.failed for b in series)
    answered = served[PRIMARY] + served[FALLBACK]
    targets = [
        TargetFigures(
            target=target,
            role=role,
            served=served[target],
            prompt_tokens=served[target] * PROMPT_TOKENS,
            completion_tokens=served[target] * COMPLETION_TOKENS,
            cost=_cost(target, served[target]),
        )
        for target, role in ((PRIMARY, "primary"), (FALLBACK, "fallback"))
    ]
    fallback_on_primary = _cost(PRIMARY, served[FALLBACK])
    impact = Impact(
        requests=requests,
        answered=answered,
        answered_by_primary=served[PRIMARY],
        answered_by_fallback=served[FALLBACK],
        failed=failed,
        failed_by_class={"timeout": 104, "server_error": 45, "rate_limited": 9},
        client_errors=requests - answered - failed,
        client_gone=12,
        deferred=25,
        deferred_completed=23,
        streams=7436,
        streams_continued=31,
        failed_over=142,
        latency=Latency(1020.0, 9450.0),
        baseline=Latency(640.0, 2010.0),
        targets=targets,
        cost=sum(t.cost or 0.0 for t in targets),
        cost_delta=(targets[1].cost or 0.0) - fallback_on_primary,
        clients=[
            ClientFigures("support-bot", 3612, 50, 45),
            ClientFigures("mobile-app", 6620, 90, 80),
            ClientFigures("nightly-batch", requests - 6620 - 3612, 18, 17),
        ],
    )
    first_failure = START + 10 * MINUTE + 7
    return Report(
        title="OpenAI outage on route gpt-4o-mini",
        incident_id="inc_01JDXK2M7QF3",
        component="route:gpt-4o-mini",
        severity="major",
        status="resolved",
        start=START,
        end=START + BUCKETS * MINUTE,
        generated_at=START + 75 * MINUTE,
        summary=(
            "For 40 minutes OpenAI's API timed out or failed for most requests on route "
            "gpt-4o-mini. Standby failed over to Anthropic within seconds and answered all "
            "but 158 of the window's requests."
        ),
        impact=impact,
        timings=Timings(
            duration=START + 50 * MINUTE - first_failure,
            to_detect=12.0,
            to_failover=3.0,
            to_notify=41.0,
            to_recover=START + 48 * MINUTE + 7 - first_failure,
            provider_lag=540.0,
        ),
        timeline=_timeline(),
        root_cause=RootCause(
            published=True,
            provider="openai",
            name="Elevated error rates on the API",
            url="https://status.openai.com/incidents/01JDXK4V6M2Q",
            updates=[
                Entry(
                    START + 19 * MINUTE + 19,
                    "investigating",
                    "We are investigating elevated error rates and latency on the API.",
                ),
                Entry(
                    START + 31 * MINUTE + 40,
                    "identified",
                    "We have identified the cause and are rolling out a mitigation.",
                ),
                Entry(
                    START + 62 * MINUTE + 3,
                    "resolved",
                    "Error rates have returned to normal levels.",
                ),
            ],
            observed={"timeout": 1874, "server_error": 912, "connect": 40},
        ),
        went_well=[
            "The first request was failed over 3 s after the first failure, before the "
            "incident opened.",
            "Streams that broke mid-answer were finished by the fallback.",
        ],
        went_badly=[
            "118 requests failed in the first minute: the first-token deadline (30 s) is "
            "longer than the breaker needs to open.",
            "The provider's status page declared the incident 9 min after Standby.",
        ],
        actions=[
            "Lower first_token on route gpt-4o-mini from 30 s to 8 s.",
            "Add a second fallback to route gpt-4o-mini.",
        ],
        series=series,
        bucket_seconds=MINUTE,
    )


def unpublished() -> Report:
    """The same outage, the provider never having said a word."""
    report = outage()
    return replace(
        report,
        timings=replace(report.timings, provider_lag=None),
        timeline=[e for e in report.timeline if e.kind != "official"],
        root_cause=replace(report.root_cause, published=False, name="", url="", updates=[]),
    )


def quiet() -> Report:
    """An hour with no incident and no request: every figure zero or not known."""
    nothing = Latency(None, None)
    return Report(
        title="Report for 2026-11-18 13:50 to 14:50 UTC",
        incident_id=None,
        component="",
        severity="",
        status="",
        start=START,
        end=START + BUCKETS * MINUTE,
        generated_at=START + 75 * MINUTE,
        summary="No request reached Standby in the window.",
        impact=Impact(
            requests=0,
            answered=0,
            answered_by_primary=0,
            answered_by_fallback=0,
            failed=0,
            failed_by_class={},
            client_errors=0,
            client_gone=0,
            deferred=0,
            deferred_completed=0,
            streams=0,
            streams_continued=0,
            failed_over=0,
            latency=nothing,
            baseline=nothing,
            targets=[],
            cost=None,
            cost_delta=None,
            clients=[],
        ),
        timings=Timings(None, None, None, None, None, None),
        timeline=[],
        root_cause=RootCause(
            published=False, provider="", name="", url="", updates=[], observed={}
        ),
        went_well=[],
        went_badly=[],
        actions=[],
        series=[],
        bucket_seconds=MINUTE,
    )


def hostile() -> Report:
    """The outage with outside text that would break a table or inject markup: pipes,
    backslashes, newlines, HTML, a ``javascript:`` link, block marks."""
    report = outage()
    return replace(
        report,
        title="Outage | <b>bold</b>",
        timeline=[
            *report.timeline,
            Entry(report.start + 600, "official", "a | b \\| c\nsecond line"),
        ],
        impact=replace(
            report.impact,
            clients=[*report.impact.clients, ClientFigures("team|x", 1, 1, 0)],
        ),
        root_cause=replace(
            report.root_cause,
            name="Errors [click](javascript:alert(1))",
            updates=[Entry(report.start, "update", "<script>alert(1)</script>")],
        ),
        actions=["# not a heading", "1. not a list", "- not an item"],
    )
