"""The report's sentences, derived from its figures and the plan (pure): the summary,
what went well, what went badly, and the action items.

Each sentence says the figure it comes from, so a reader can check it against the
impact table; thresholds are the ones an on-call engineer would call good or bad (a
fallback that served 99 % of what the primary missed held; detection past a minute is
slow), kept here as named values.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from standby.incidents.manager import route_targets
from standby.plan.model import Plan
from standby.reports.model import Impact, RootCause, Timings

HELD = 0.99  # share of what the primary missed that fallbacks must serve to have held
FAST_DETECTION = 30.0  # seconds
SLOW_DETECTION = 60.0
FAST_NOTICE = 60.0
SLOW_NOTICE = 300.0
SLOW_P99_MS = 2000.0  # an answer this slow at p99 is worth a lower first_token


def duration(seconds: float) -> str:
    """``41 s``, ``3 min 12 s``, ``1 h 5 min``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, rest = divmod(s, 60)
        return f"{m} min {rest} s" if rest else f"{m} min"
    h, rest = divmod(s, 3600)
    m = rest // 60
    return f"{h} h {m} min" if m else f"{h} h"


def _share(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f} %" if whole else "-"


def _classes(found: dict[str, int], top: int = 3) -> str:
    return ", ".join(f"{name}: {n:,}" for name, n in list(found.items())[:top])


def summary(
    title: str, impact: Impact, timings: Timings, root: RootCause, *, resolved: bool
) -> str:
    parts = [f"{title}."]
    if timings.duration is not None:
        parts.append(f"It lasted {duration(timings.duration)} from the first failure.")
    elif not resolved:
        parts.append("It is not resolved yet: the figures run to now.")
    parts.append(
        f"{impact.requests:,} requests: {impact.answered_by_primary:,} answered by the "
        f"primary, {impact.answered_by_fallback:,} by a fallback, {impact.failed:,} failed."
    )
    share = impact.fallback_share
    if share is not None:
        parts.append(f"Fallbacks served {share * 100:.1f} % of the requests the primary could not.")
    if timings.to_detect is not None:
        parts.append(f"Standby detected it {duration(timings.to_detect)} after the first failure.")
    if root.published:
        parts.append(f"{root.provider} published an incident: “{root.name}”.")
    return " ".join(parts)


def went_well(impact: Impact, timings: Timings) -> list[str]:
    found = []
    share = impact.fallback_share
    missed = impact.answered_by_fallback + impact.failed
    if share is not None and share >= HELD:
        found.append(
            f"Fallbacks served {share * 100:.1f} % of the requests the primary could not "
            f"answer ({impact.answered_by_fallback:,} of {missed:,})."
        )
    if impact.requests and impact.failed == 0:
        found.append(f"No request failed ({impact.requests:,} received).")
    if impact.streams_continued:
        found.append(
            f"{impact.streams_continued:,} streams that broke mid-answer were finished by "
            "another target: their callers got whole answers."
        )
    if impact.deferred_completed:
        found.append(f"{impact.deferred_completed:,} deferred requests were completed on recovery.")
    if timings.to_detect is not None and timings.to_detect <= FAST_DETECTION:
        found.append(f"Detected {duration(timings.to_detect)} after the first failure.")
    if timings.to_notify is not None and timings.to_notify <= FAST_NOTICE:
        found.append(
            f"The first notification was delivered {duration(timings.to_notify)} after the "
            "first failure."
        )
    if timings.provider_lag is not None and timings.provider_lag > 0:
        found.append(
            f"Standby knew {duration(timings.provider_lag)} before the provider's status "
            "page said so."
        )
    return found


def went_badly(impact: Impact, timings: Timings) -> list[str]:
    found = []
    if impact.failed:
        found.append(
            f"{impact.failed:,} requests failed ({_share(impact.failed, impact.requests)}): "
            f"{_classes(impact.failed_by_class)}."
        )
    share = impact.fallback_share
    if share is not None and share < HELD:
        found.append(
            f"Fallbacks served only {share * 100:.1f} % of the requests the primary could "
            "not answer."
        )
    if timings.to_detect is not None and timings.to_detect > SLOW_DETECTION:
        found.append(f"Detection took {duration(timings.to_detect)}.")
    if timings.to_notify is not None and timings.to_notify > SLOW_NOTICE:
        found.append(f"The first notification took {duration(timings.to_notify)}.")
    added = impact.added.p99_ms
    if added is not None and added > 500:
        found.append(
            f"p99 latency rose by {added:,.0f} ms over the same hours of the previous 7 days."
        )
    pending = impact.deferred - impact.deferred_completed
    if pending > 0:
        found.append(f"{pending:,} deferred requests are not completed yet.")
    return found


def vendor(plan: Plan, provider: str) -> str:
    """Who runs a provider: its kind, or the host of an OpenAI-compatible one (several
    accounts of one company fail together)."""
    config = plan.providers.get(provider)
    if config is None:
        return provider
    if config.kind == "openai-compatible":
        return urlsplit(config.base_url).hostname or config.kind
    return config.kind


def actions(
    plan: Plan, impact: Impact, timings: Timings, routes: Iterable[str] | None
) -> list[str]:
    found = []
    chosen = set(routes) if routes is not None else None
    for name, keys in sorted(route_targets(plan).items()):
        if chosen is not None and name not in chosen:
            continue
        if len(keys) < 2:
            found.append(f"Route `{name}` has no backup: add a target at another provider.")
            continue
        vendors = {vendor(plan, key.partition("/")[0]) for key in keys}
        if len(vendors) == 1:
            found.append(
                f"Route `{name}` has {len(keys) - 1} backup(s), all at {vendors.pop()}: an "
                "outage there leaves it nothing; add a target at another vendor."
            )
    slow = impact.failed_by_class.get("timeout_first_token", 0)
    if slow:
        found.append(
            f"{slow:,} requests failed waiting for a first token: lower "
            "`timeouts.first_token` so that failing over starts sooner."
        )
    p99 = impact.latency.p99_ms
    if p99 is not None and p99 > SLOW_P99_MS and impact.answered_by_fallback:
        found.append(
            f"p99 latency in the window was {p99 / 1000:.1f} s: lower `timeouts.first_token` "
            "(or add a faster fallback) to bound what callers wait."
        )
    if timings.to_detect is not None and timings.to_detect > SLOW_DETECTION:
        found.append(
            "Detection was slow: lower the thresholds of `incidents.detect`, or enable "
            "`probes` so quiet hours are watched too."
        )
    if timings.to_notify is None and timings.to_detect is not None:
        found.append(
            "No notification was delivered: check the `notify` channels (`standby notify test`)."
        )
    pending = impact.deferred - impact.deferred_completed
    if pending > 0:
        found.append(f"Follow up the {pending:,} deferred requests not completed yet.")
    unpriced = [t.target for t in impact.targets if t.cost is None]
    if unpriced:
        found.append(
            "Add `prices` for " + ", ".join(f"`{t}`" for t in unpriced) + " to see what the "
            "outage cost."
        )
    return found
