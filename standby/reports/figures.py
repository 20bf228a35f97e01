"""The figures of a report, folded in one pass over the window's requests (pure).

What counts, once:

* a request the caller got wrong (a 4xx other than 429) is counted apart, never as a
  failure of the service;
* *answered by the primary*: by a target of the first tier of its route (the plan's
  order); by a *fallback* otherwise;
* *failed over*: answered after a try that failed on another target;
* *continued*: a stream whose try broke after the client had received some of the
  answer (the journal marks that try ``mid_answer``) and that was answered to the end;
* *latency*: receipt to the answer's end, of answered requests that were not deferred
  (a deferred request waits on purpose);
* *cost*: tokens at the plan's prices (per million, input and output); the fallback's
  *cost delta* is what its tokens cost minus what the same tokens would have cost on the
  route's primary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from standby.reports.model import Bucket, ClientFigures, Impact, Latency, TargetFigures
from standby.reports.requests import Fact

# price per million tokens: target "provider/model" → (input, output)
Prices = Mapping[str, tuple[float, float]]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0 to 100) of sorted ``values``; None when empty."""
    if not values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(values)))
    return values[min(rank, len(values)) - 1]


def latency_of(seconds: Iterable[float]) -> Latency:
    ordered = sorted(seconds)
    p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
    return Latency(None if p50 is None else p50 * 1000.0, None if p99 is None else p99 * 1000.0)


@dataclass
class _Tally:
    requests: int = 0
    failed: int = 0
    failed_over: int = 0


@dataclass
class _Slice:
    requests: int = 0
    failed: int = 0
    seconds: list[float] = field(default_factory=list)
    served_by: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Moments:
    """When things happened, as the journal shows them (None: not seen)."""

    first_failure: float | None  # a try on a primary failed
    first_fallback_answer: float | None  # a fallback finished an answer
    last_primary_failure: float | None
    primary_back: float | None  # the first primary answer after the last primary failure


@dataclass(frozen=True, slots=True)
class Folded:
    impact: Impact
    series: list[Bucket]
    observed: dict[str, int]  # failed tries' outcomes → count
    moments: Moments


def fold(
    facts: Sequence[Fact],
    *,
    primaries: Mapping[str, frozenset[str]],
    prices: Prices,
    baseline_seconds: Sequence[float],
    start: float,
    end: float,
    bucket: float,
) -> Folded:
    """Everything a report shows of ``facts`` (requests received in ``[start, end)``);
    ``primaries``: route → its first tier's targets."""
    answered = by_primary = by_fallback = failed = client_errors = client_gone = 0
    deferred = deferred_completed = streams = continued = failed_over = 0
    failed_by_class: dict[str, int] = {}
    observed: dict[str, int] = {}
    seconds: list[float] = []
    served: dict[str, list[int]] = {}  # target → [answers, prompt tokens, completion tokens]
    primary_of: dict[str, str] = {}  # target answering for a route → that route's primary
    clients: dict[str, _Tally] = {}
    count = max(1, math.ceil((end - start) / bucket))
    slices = [_Slice() for _ in range(count)]
    first_failure = first_fallback = last_primary_failure = None
    primary_answers: list[float] = []
    for f in facts:
        if f.deferred:
            deferred += 1
            deferred_completed += f.answered
        if f.client_error:
            client_errors += 1
            continue
        first = primaries.get(f.route) or _first_tried(f)
        at = f.received_at
        for t in f.tries:
            if t.failed:
                observed[t.outcome] = observed.get(t.outcome, 0) + 1
                if t.target in first:
                    ended = at + t.seconds
                    first_failure = ended if first_failure is None else min(first_failure, ended)
                    if last_primary_failure is None or ended > last_primary_failure:
                        last_primary_failure = ended
            at += t.seconds
        tally = clients.setdefault(f.client, _Tally())
        tally.requests += 1
        index = min(count - 1, max(0, int((f.received_at - start) // bucket)))
        piece = slices[index]
        piece.requests += 1
        streams += f.stream
        if f.answered:
            answered += 1
            figures = served.setdefault(f.target, [0, 0, 0])
            figures[0] += 1
            figures[1] += f.prompt_tokens
            figures[2] += f.completion_tokens
            piece.served_by[f.target] = piece.served_by.get(f.target, 0) + 1
            done = f.finished_at if f.finished_at is not None else f.received_at
            if f.target in first:
                by_primary += 1
                primary_answers.append(done)
            else:
                by_fallback += 1
                if first:
                    primary_of.setdefault(f.target, min(first))
                first_fallback = done if first_fallback is None else min(first_fallback, done)
            if any(t.failed and t.target != f.target for t in f.tries):
                failed_over += 1
                tally.failed_over += 1
            if f.stream and any(t.mid_answer for t in f.tries):
                continued += 1
            if not f.deferred and f.finished_at is not None:
                seconds.append(f.finished_at - f.received_at)
                piece.seconds.append(f.finished_at - f.received_at)
        elif f.failed:
            failed += 1
            tally.failed += 1
            piece.failed += 1
            why = _why(f)
            failed_by_class[why] = failed_by_class.get(why, 0) + 1
        elif f.state == "client_gone":
            client_gone += 1
    primary_back = None
    if last_primary_failure is not None:
        later = [at for at in primary_answers if at >= last_primary_failure]
        primary_back = min(later) if later else None
    targets = _targets(served, primaries, prices)
    priced = [t.cost for t in targets]
    impact = Impact(
        requests=len(facts),
        answered=answered,
        answered_by_primary=by_primary,
        answered_by_fallback=by_fallback,
        failed=failed,
        failed_by_class=dict(sorted(failed_by_class.items(), key=lambda kv: -kv[1])),
        client_errors=client_errors,
        client_gone=client_gone,
        deferred=deferred,
        deferred_completed=deferred_completed,
        streams=streams,
        streams_continued=continued,
        failed_over=failed_over,
        latency=latency_of(seconds),
        baseline=latency_of(baseline_seconds),
        targets=targets,
        cost=None
        if not priced or any(c is None for c in priced)
        else sum(c or 0.0 for c in priced),
        cost_delta=_delta(served, primary_of, prices),
        clients=[
            ClientFigures(name, t.requests, t.failed, t.failed_over)
            for name, t in sorted(clients.items(), key=lambda kv: (-kv[1].failed, kv[0]))
        ],
    )
    series = [
        Bucket(
            at=start + i * bucket,
            requests=s.requests,
            failed=s.failed,
            p50_ms=latency_of(s.seconds).p50_ms,
            p99_ms=latency_of(s.seconds).p99_ms,
            served_by=dict(sorted(s.served_by.items())),
        )
        for i, s in enumerate(slices)
    ]
    moments = Moments(first_failure, first_fallback, last_primary_failure, primary_back)
    return Folded(impact, series, dict(sorted(observed.items(), key=lambda kv: -kv[1])), moments)


def _first_tried(f: Fact) -> frozenset[str]:
    """A route the plan does not know (any more): its first try stands for its primary."""
    for t in f.tries:
        if not t.skipped:
            return frozenset({t.target})
    return frozenset()


def _why(f: Fact) -> str:
    """A failed request's error class: its last try's outcome (or why none was made)."""
    made = [t for t in f.tries if not t.skipped]
    if made:
        return made[-1].outcome.removesuffix(":mid_answer")
    if f.tries:
        return f.tries[0].outcome
    return "interrupted" if f.state == "interrupted" else "no_target"


def cost(prices: Prices, target: str, prompt: int, completion: int) -> float | None:
    price = prices.get(target)
    if price is None:
        return None
    return (prompt * price[0] + completion * price[1]) / 1_000_000


def _targets(
    served: dict[str, list[int]], primaries: Mapping[str, frozenset[str]], prices: Prices
) -> list[TargetFigures]:
    firsts = {key for keys in primaries.values() for key in keys}
    return [
        TargetFigures(
            target=target,
            role="primary" if target in firsts else "fallback",
            served=n,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=cost(prices, target, prompt, completion),
        )
        for target, (n, prompt, completion) in sorted(served.items(), key=lambda kv: -kv[1][0])
    ]


def _delta(
    served: dict[str, list[int]], primary_of: dict[str, str], prices: Prices
) -> float | None:
    """The fallbacks' cost minus the same tokens' cost on the primary they stood in for."""
    if not primary_of:
        return None
    total = 0.0
    for target, primary in primary_of.items():
        _, prompt, completion = served[target]
        spent, instead = (
            cost(prices, target, prompt, completion),
            cost(prices, primary, prompt, completion),
        )
        if spent is None or instead is None:
            return None
        total += spent - instead
    return total
