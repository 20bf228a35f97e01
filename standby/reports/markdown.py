"""A post-outage report as GitHub-flavoured Markdown, and the words both renderers share.

The report is read by people who were not there: figures are written as people read them
(``12,345``, ``3.4 %``, ``3 min 12 s``, ``0.0123``), every duration is a sentence saying
what it was measured from, and a figure the journal does not know says "not known"
rather than a misleading zero.  The rows and sentences are built here once, as plain
strings, so the HTML renderer (``reports.html``) lays out the very same words.

Costs are the plan's prices with no currency: the plan does not say which one, so they are
labelled "cost (plan prices)" and never given a ``$``.

Text that comes from outside (a provider's incident name and updates, client names) is
escaped so that it can neither break a table nor smuggle in HTML or links.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from standby.reports.model import Impact, Report, RootCause, Timings

SECTIONS = (
    "Summary",
    "Impact",
    "Detection",
    "Response",
    "Recovery",
    "Timeline",
    "Root cause",
    "What went well",
    "What went badly",
    "Action items",
)
NOT_KNOWN = "not known"
NOT_PUBLISHED = "Not published by the provider."
COST = "cost (plan prices)"
NO_CLIENT = "(no client key)"  # the name of every caller of an open gateway
NO_TARGET = "No target answered in the window."
NO_CLIENTS = "No client sent a request in the window."
NO_TIMELINE = "Nothing happened in the window."
CAPTIONS = {  # each table's caption (a bold line above it in Markdown)
    "requests": "What the window's requests met",
    "latency": "Latency of the answered requests, against the baseline",
    "targets": "What each target served, and its cost at the plan's prices",
    "clients": "Affected clients, the most failed first",
    "timeline": "What happened, in order",
    "observed": "Error classes Standby observed on the failing targets",
}

# Characters that mean something to Markdown inside a line (``_`` is left: GFM does not
# emphasise inside a word, and identifiers like ``server_error`` stay readable raw)
_SPECIAL = "\\`*[]<>|~"
_DASH = "\N{EN DASH}"  # of a range of times
_BLOCK_STARTS = set("#+-_~=")  # a heading, a list item, a rule, a fence
_ORDERED_ITEM = re.compile(r"^(\d{1,9})([.)])")


# --- figures for people ------------------------------------------------------------------


def count(value: int) -> str:
    """``12345`` → ``12,345``."""
    return f"{value:,}"


def percent(fraction: float) -> str:
    """A share with one decimal, never rounding a failure away: ``0.0004`` is ``< 0.1 %``,
    not ``0.0 %``, and ``0.9996`` is ``> 99.9 %``, not ``100.0 %``."""
    shown = f"{fraction * 100:.1f}"
    if shown in ("0.0", "-0.0") and fraction > 0:
        return "< 0.1 %"
    if shown == "100.0" and fraction < 1:
        return "> 99.9 %"
    return f"{shown} %"


def share(part: int, whole: int) -> str:
    """``part`` as a share of ``whole``; a dash when there is no whole to share."""
    return "—" if whole == 0 else percent(part / whole)


def duration(seconds: float) -> str:
    """``41 s``, ``2.5 s``, ``3 min 12 s``, ``1 h 5 min``, ``2 d 3 h``: the two largest
    units that matter.  The magnitude only: whether it is before or after something is
    the sentence's business."""
    magnitude = abs(seconds)
    if magnitude < 10 and round(magnitude, 1) != round(magnitude):
        return f"{magnitude:.1f} s"
    whole = round(magnitude)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min" if rest == 0 else f"{minutes} min {rest} s"
    total_minutes = round(magnitude / 60)
    if total_minutes < 24 * 60:
        hours, minutes = divmod(total_minutes, 60)
        return f"{hours} h" if minutes == 0 else f"{hours} h {minutes} min"
    days, hours = divmod(round(magnitude / 3600), 24)
    return f"{days} d" if hours == 0 else f"{days} d {hours} h"


def money(value: float | None) -> str:
    """An amount at the plan's prices: two decimals from 1 up (``1,234.50``), up to four
    below (``0.0123``, ``0.10``), ``< 0.0001`` for a crumb; "no price" when the plan has
    none for it."""
    if value is None:
        return "no price"
    magnitude = abs(value)
    sign = "-" if value < 0 else ""
    if magnitude == 0:
        return "0.00"
    if magnitude >= 1:
        return f"{sign}{magnitude:,.2f}"
    if magnitude < 0.00005:
        return f"{sign}< 0.0001"
    digits = f"{magnitude:.4f}".rstrip("0")
    digits += "0" * max(0, 2 - len(digits.split(".")[1]))  # at least two decimals: 0.10
    return sign + digits


def signed_money(value: float | None) -> str:
    """A difference of amounts: ``+3.51``, ``-0.0200``, ``0.00``."""
    shown = money(value)
    return "+" + shown if value is not None and value > 0 else shown


def milliseconds(value: float | None) -> str:
    """A latency: ``1,450 ms``; "not known" when no request was answered."""
    return NOT_KNOWN if value is None else f"{value:,.0f} ms"


def signed_milliseconds(value: float | None) -> str:
    """A latency added to the baseline: ``+830 ms``, ``-12 ms``."""
    if value is None:
        return NOT_KNOWN
    return f"+{value:,.0f} ms" if round(value) > 0 else f"{value:,.0f} ms"


def utc(at: float, pattern: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(at, UTC).strftime(pattern)


def window(start: float, end: float) -> str:
    """``2026-11-18 13:50``, an en dash, ``14:50 UTC``; both dates when it spans
    midnight; seconds only when a bound has some."""
    clock = "%H:%M" if start % 60 == 0 and end % 60 == 0 else "%H:%M:%S"
    if utc(start, "%Y-%m-%d") == utc(end, "%Y-%m-%d"):
        return f"{utc(start, '%Y-%m-%d ' + clock)}{_DASH}{utc(end, clock)} UTC"
    return f"{utc(start, '%Y-%m-%d ' + clock)} {_DASH} {utc(end, '%Y-%m-%d ' + clock)} UTC"


def moment(report: Report, at: float) -> str:
    """A time on the timeline: ``14:00:07`` when the window is one UTC day, else with
    its date."""
    one_day = utc(report.start, "%Y-%m-%d") == utc(report.end, "%Y-%m-%d")
    return utc(at, "%H:%M:%S" if one_day else "%Y-%m-%d %H:%M:%S")


def update_time(report: Report, at: float) -> str:
    """When a provider's update was posted: its page may give no time (``0``)."""
    return f"{moment(report, at)} UTC" if at > 0 else "time not given"


def client_name(client: str) -> str:
    return client or NO_CLIENT


# --- the report's rows and sentences, shared with the HTML renderer ------------------------


def status_line(report: Report) -> list[tuple[str, str]]:
    """(label, value) pairs of the line under the title; empty parts left out."""
    parts = [("Incident", report.incident_id or "none (a window with no incident)")]
    if report.component:
        parts.append(("Component", report.component))
    if report.severity:
        parts.append(("Severity", report.severity))
    if report.status:
        parts.append(("Status", report.status))
    parts.append(("Window", window(report.start, report.end)))
    return parts


def impact_rows(impact: Impact) -> list[tuple[str, str, str]]:
    """(figure, value, share) of what the window's requests met; the failed ones also by
    error class, the most frequent first."""
    rows = [
        ("Requests", count(impact.requests), ""),
        (
            "Answered by the primary",
            count(impact.answered_by_primary),
            share(impact.answered_by_primary, impact.requests),
        ),
        (
            "Answered by a fallback",
            count(impact.answered_by_fallback),
            share(impact.answered_by_fallback, impact.requests),
        ),
        ("Failed", count(impact.failed), share(impact.failed, impact.requests)),
    ]
    by_class = sorted(impact.failed_by_class.items(), key=lambda item: (-item[1], item[0]))
    rows += [
        (f"Failed: {name}", count(value), share(value, impact.requests)) for name, value in by_class
    ]
    fallback_share = impact.fallback_share
    rows += [
        (
            "Missed by the primary, answered by a fallback",
            count(impact.answered_by_fallback),
            "—" if fallback_share is None else percent(fallback_share),
        ),
        (
            "Failed over (answered after a failed attempt)",
            count(impact.failed_over),
            share(impact.failed_over, impact.answered),
        ),
        (
            "Streams continued mid-answer by another target",
            count(impact.streams_continued),
            share(impact.streams_continued, impact.streams),
        ),
        ("Deferred (accepted for later)", count(impact.deferred), ""),
        (
            "Deferred and later completed",
            count(impact.deferred_completed),
            share(impact.deferred_completed, impact.deferred),
        ),
        ("Client errors (the caller's own, 4xx)", count(impact.client_errors), ""),
        ("Callers gone before the answer ended", count(impact.client_gone), ""),
    ]
    return rows


IMPACT_HEADER = ("Figure", "Requests", "Share")
IMPACT_NOTE = (
    "Shares are of all requests, except: failed over, of the answered ones; streams "
    "continued, of the streams; deferred and completed, of the deferred; answered by a "
    "fallback, also of the requests the primary did not answer."
)


def latency_rows(impact: Impact) -> list[tuple[str, str, str]]:
    """(which, p50, p99): the window, the same hours of the previous 7 days, the added."""
    added = impact.added
    return [
        (
            "This window",
            milliseconds(impact.latency.p50_ms),
            milliseconds(impact.latency.p99_ms),
        ),
        (
            "Baseline (same hours, previous 7 days)",
            milliseconds(impact.baseline.p50_ms),
            milliseconds(impact.baseline.p99_ms),
        ),
        ("Added", signed_milliseconds(added.p50_ms), signed_milliseconds(added.p99_ms)),
    ]


LATENCY_HEADER = ("Over", "p50", "p99")


def target_rows(impact: Impact) -> list[tuple[str, str, str, str, str, str]]:
    """(target, role, served, prompt tokens, completion tokens, cost), and a total last;
    none at all when no target was involved."""
    if not impact.targets:
        return []
    rows = [
        (
            figures.target,
            figures.role,
            count(figures.served),
            count(figures.prompt_tokens),
            count(figures.completion_tokens),
            money(figures.cost),
        )
        for figures in impact.targets
    ]
    rows.append(
        (
            "All targets",
            "",
            count(sum(figures.served for figures in impact.targets)),
            count(sum(figures.prompt_tokens for figures in impact.targets)),
            count(sum(figures.completion_tokens for figures in impact.targets)),
            money(impact.cost),
        )
    )
    return rows


TARGET_HEADER = ("Target", "Role", "Served", "Prompt tokens", "Completion tokens", COST)


def cost_delta_sentence(impact: Impact) -> str:
    if impact.cost_delta is None and impact.answered_by_fallback == 0:
        return "Cost delta of the fallbacks: none, no fallback answered."
    if impact.cost_delta is None:
        return (
            "Cost delta of the fallbacks: not known (the plan has no price for a target involved)."
        )
    return (
        f"Cost delta of the fallbacks: {signed_money(impact.cost_delta)} at the plan's "
        "prices — what the fallbacks cost minus the same tokens on the primary."
    )


def client_rows(impact: Impact) -> list[tuple[str, str, str, str]]:
    """(client, requests, failed, failed over), the most affected (most failed) first."""
    ordered = sorted(impact.clients, key=lambda c: (-c.failed, -c.requests, c.client))
    return [
        (
            client_name(c.client),
            count(c.requests),
            f"{count(c.failed)} ({share(c.failed, c.requests)})",
            count(c.failed_over),
        )
        for c in ordered
    ]


CLIENT_HEADER = ("Client", "Requests", "Failed", "Failed over")


def _after(what: str, seconds: float | None, since: str = "the first failure") -> str:
    if seconds is None:
        return f"{what}: {NOT_KNOWN}."
    return f"{what} {duration(seconds)} after {since}."


def timings_in_words(timings: Timings) -> list[tuple[str, list[str]]]:
    """The Detection, Response and Recovery sections as sentences, each measured from
    the first failure Standby saw."""
    lag = timings.provider_lag
    if lag is None:
        declared = f"Declared on the provider's status page: {NOT_KNOWN}."
    elif round(lag) == 0:
        declared = "Declared on the provider's status page as Standby detected it."
    else:
        relation = "after" if lag > 0 else "before"
        declared = (
            f"Declared on the provider's status page {duration(lag)} {relation} "
            "Standby detected it."
        )
    lasted = (
        f"Duration: {NOT_KNOWN}."
        if timings.duration is None
        else f"Lasted {duration(timings.duration)}, from the first failure to resolution."
    )
    return [
        ("Detection", [_after("Detected (the incident opened)", timings.to_detect), declared]),
        (
            "Response",
            [
                _after("First request answered by a fallback", timings.to_failover),
                _after("First notification delivered", timings.to_notify),
            ],
        ),
        ("Recovery", [_after("Primary answered again", timings.to_recover), lasted]),
    ]


def observed_rows(root: RootCause) -> list[tuple[str, str]]:
    """(error class, attempts) seen on the failing targets, the most frequent first."""
    ordered = sorted(root.observed.items(), key=lambda item: (-item[1], item[0]))
    return [(name, count(value)) for name, value in ordered]


def is_web_link(url: str) -> bool:
    """Only an http(s) address becomes a link: anything else is shown, never followed."""
    return url.startswith(("https://", "http://")) and not any(c in url for c in " <>\"'\n")


# --- Markdown ------------------------------------------------------------------------------


def text(value: str, *, line_start: bool = True) -> str:
    """``value`` as literal Markdown on one line: the characters that would start markup,
    a link, raw HTML or end a table cell are escaped, and so is a block's mark (a
    heading, a list item, a rule) when the text starts a line."""
    flat = " ".join(value.split())
    escaped = "".join("\\" + c if c in _SPECIAL else c for c in flat)
    if not line_start:
        return escaped
    if escaped[:1] in _BLOCK_STARTS:
        return "\\" + escaped
    return _ORDERED_ITEM.sub(r"\1\\\2", escaped, count=1)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """A GFM table of literal text; the ``numeric`` columns right-aligned."""
    rule = " | ".join("---:" if i in numeric else "---" for i in range(len(header)))
    lines = [" | ".join(text(cell, line_start=False) for cell in header), rule]
    lines += [" | ".join(text(cell, line_start=False) for cell in row) for row in rows]
    return "\n".join(f"| {line} |" for line in lines)


def _bullets(items: Sequence[str], empty: str, mark: str = "-") -> str:
    if not items:
        return f"_{empty}_"
    return "\n".join(f"{mark} {text(item)}" for item in items)


def _root_cause(report: Report) -> list[str]:
    root = report.root_cause
    parts = []
    if root.published:
        name = text(root.name or "The provider's incident")
        link = f"[{name}](<{root.url}>)" if is_web_link(root.url) else name
        by = f" ({text(root.provider)})" if root.provider else ""
        parts.append(f"The provider's incident{by}: {link}")
        if root.url and not is_web_link(root.url):
            parts.append(f"Address: {text(root.url)}")
        if root.updates:
            parts.append(
                "\n".join(
                    f"- {update_time(report, update.at)}, {text(update.kind)}: {text(update.text)}"
                    for update in root.updates
                )
            )
        else:
            parts.append("_The provider published no update._")
    else:
        parts.append(NOT_PUBLISHED)
    observed = observed_rows(root)
    if observed:
        parts.append(f"**{CAPTIONS['observed']}**")
        parts.append(table(("Error class", "Attempts"), observed, {1}))
    else:
        parts.append("_Standby observed no failed attempt._")
    return parts


def render_markdown(report: Report) -> str:
    """The report as one GitHub-flavoured Markdown document, sections in the order of the
    Google SRE postmortem."""
    impact = report.impact
    status = " · ".join(f"**{label}** {text(value)}" for label, value in status_line(report))
    sections: dict[str, list[str]] = {
        "Summary": [text(report.summary) if report.summary else "_No summary._"],
        "Impact": [
            f"**{CAPTIONS['requests']}**",
            table(IMPACT_HEADER, impact_rows(impact), {1, 2}),
            text(IMPACT_NOTE),
            f"**{CAPTIONS['latency']}**",
            table(LATENCY_HEADER, latency_rows(impact), {1, 2}),
            f"**{CAPTIONS['targets']}**",
            (
                table(TARGET_HEADER, target_rows(impact), {2, 3, 4, 5})
                if impact.targets
                else f"_{NO_TARGET}_"
            ),
            text(cost_delta_sentence(impact)),
            f"**{CAPTIONS['clients']}**",
            (
                table(CLIENT_HEADER, client_rows(impact), {1, 2, 3})
                if impact.clients
                else f"_{NO_CLIENTS}_"
            ),
        ],
    }
    for name, sentences in timings_in_words(report.timings):
        sections[name] = [_bullets(sentences, "")]
    sections["Timeline"] = [
        (
            table(
                ("Time (UTC)", "Kind", "What happened"),
                [(moment(report, e.at), e.kind, e.text) for e in report.timeline],
                set(),
            )
            if report.timeline
            else f"_{NO_TIMELINE}_"
        )
    ]
    sections["Root cause"] = _root_cause(report)
    sections["What went well"] = [_bullets(report.went_well, "Nothing recorded.")]
    sections["What went badly"] = [_bullets(report.went_badly, "Nothing recorded.")]
    sections["Action items"] = [_bullets(report.actions, "No action items.", "- [ ]")]
    lines = [f"# {text(report.title)}", status]
    for name in SECTIONS:
        lines.append(f"## {name}")
        lines.extend(sections[name])
    lines.append(f"_Generated {utc(report.generated_at)} UTC from the journal._")
    return "\n\n".join(lines) + "\n"
