"""The report's charts as inline SVG: latency (p50 and p99), error rate, and which target
served the answers, over the window's buckets.

Pure functions from a report's series to one SVG string each: no external asset, no
script, a ``viewBox`` and no fixed size so a page can scale them.  Each is an image for
assistive technology (``role="img"``, a ``<title>`` and a ``<desc>`` that says in words
what the chart shows, so nobody needs to see it), and each stays readable printed in
black and white: the two latency lines differ by dash as well as colour, and every band
of the stacked chart has a hatching of its own, repeated in a legend written in text.
Text and axes are drawn in ``currentColor``, so they follow the page's colour.

Lines and bands are drawn per bucket: a line is broken where buckets are missing or
have nothing to show (no answered request, no request), never drawn through a guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from standby.reports.model import Bucket

WIDTH = 640.0
LEFT = 64.0  # room for the value axis' labels
RIGHT = 16.0
TOP = 32.0  # room for the chart's key above the plot
PLOT_HEIGHT = 150.0
BOTTOM = 30.0  # room for the time axis' labels
LEGEND_ROW = 20.0

# Okabe & Ito's palette, safe for the common colour-vision deficiencies; the hatchings
# below tell the bands apart where colour cannot (grey print, monochrome screens).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000")
HATCHES = (
    "",  # plain colour
    "M-2,2 L2,-2 M0,8 L8,0 M6,10 L10,6",  # diagonal
    "M0,0 L8,8 M0,8 L8,0",  # cross
    "M0,4 L8,4",  # horizontal
    "M4,0 L4,8",  # vertical
    "M-2,6 L2,10 M0,0 L8,8 M6,-2 L10,2",  # the other diagonal
    "M0,4 L8,4 M4,0 L4,8",  # grid
    "dots",
)
P50_COLOUR, P99_COLOUR, ERROR_COLOUR = PALETTE[0], PALETTE[5], PALETTE[5]
_ID = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
TIME_STEPS = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True, slots=True)
class Frame:
    """The plot's box in ``viewBox`` units: the window's time across, ``0..top`` up."""

    start: float
    end: float
    top: float

    def x(self, at: float) -> float:
        span = self.end - self.start
        return LEFT + (WIDTH - LEFT - RIGHT) * ((at - self.start) / span if span > 0 else 0.5)

    def y(self, value: float) -> float:
        return TOP + PLOT_HEIGHT * (1 - (value / self.top if self.top > 0 else 0))

    @property
    def bottom(self) -> float:
        return TOP + PLOT_HEIGHT


def _n(value: float) -> str:
    """A coordinate: one decimal is plenty at this size, and keeps the SVG small."""
    return f"{value:.1f}"


def _clock(at: float, pattern: str = "%H:%M") -> str:
    return datetime.fromtimestamp(at, UTC).strftime(pattern)


def _per(bucket_seconds: float) -> str:
    """``60`` → "per minute"; ``300`` → "per 5 min"."""
    if bucket_seconds == 60:
        return "per minute"
    if bucket_seconds % 3600 == 0:
        return f"per {bucket_seconds / 3600:g} h"
    if bucket_seconds % 60 == 0:
        return f"per {bucket_seconds / 60:g} min"
    return f"per {bucket_seconds:g} s"


def _span(series: Sequence[Bucket], bucket_seconds: float) -> str:
    start, end = series[0].at, series[-1].at + bucket_seconds
    pattern = "%H:%M" if (end - start) < 86400 else "%Y-%m-%d %H:%M"
    return f"{_clock(start, pattern)} to {_clock(end, pattern)} UTC"


def nice_top(maximum: float, ticks: int = 4) -> tuple[float, list[float]]:
    """An axis from 0 to a round number at or above ``maximum`` (1, 2, 2.5 or 5 times a
    power of ten per step), and its ticks."""
    if maximum <= 0 or not math.isfinite(maximum):
        return 1.0, [0.0, 0.5, 1.0]
    raw = maximum / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    steps = math.ceil(maximum / step - 1e-9)
    return round(step * steps, 12), [round(step * i, 12) for i in range(steps + 1)]


def value_label(value: float) -> str:
    """A tick's label: ``30,000``, ``0.25``."""
    if value.is_integer():
        return f"{value:,.0f}"
    return f"{value:,.3f}".rstrip("0")


def time_ticks(start: float, end: float) -> list[tuple[float, str]]:
    """Round UTC times in ``[start, end]`` (six at most), with their labels."""
    span = end - start
    if span <= 0:
        return [(start, _clock(start))]
    days = 86400 * math.ceil(span / (6 * 86400))  # past the table: whole days
    step = next((s for s in TIME_STEPS if span / s <= 6), days)
    if step < 60:
        pattern = "%H:%M:%S"
    elif step < 86400:
        pattern = "%H:%M" if span < 86400 else "%b %d %H:%M"
    else:
        pattern = "%b %d"
    first = math.ceil(start / step) * step
    return [
        (at, _clock(at, pattern))
        for at in (first + i * step for i in range(int((end - first) // step) + 1))
    ]


def _runs(series: Sequence[Bucket], bucket_seconds: float) -> list[list[Bucket]]:
    """The series cut where buckets are missing."""
    runs: list[list[Bucket]] = []
    for bucket in series:
        if runs and bucket.at - runs[-1][-1].at <= bucket_seconds * 1.5:
            runs[-1].append(bucket)
        else:
            runs.append([bucket])
    return runs


def _segments(
    frame: Frame, points: Sequence[tuple[float, float | None]]
) -> list[list[tuple[float, float]]]:
    """The known points in plot units, cut at every unknown one."""
    segments: list[list[tuple[float, float]]] = [[]]
    for at, value in points:
        if value is None:
            segments.append([])
        else:
            segments[-1].append((frame.x(at), frame.y(value)))
    return [segment for segment in segments if segment]


def _line(
    segments: Sequence[Sequence[tuple[float, float]]], *, colour: str, dash: str, name: str
) -> list[str]:
    """A line through each segment; a segment of one point is a dot."""
    drawn = []
    paths = [segment for segment in segments if len(segment) > 1]
    if paths:
        d = " ".join("M" + " L".join(f"{_n(x)},{_n(y)}" for x, y in segment) for segment in paths)
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        drawn.append(
            f'<path class="line {name}" d="{d}" fill="none" stroke="{colour}" '
            f'stroke-width="2" stroke-linejoin="round"{dashing}/>'
        )
    drawn += [
        f'<circle class="point {name}" cx="{_n(x)}" cy="{_n(y)}" r="3" fill="{colour}"/>'
        for segment in segments
        if len(segment) == 1
        for x, y in segment
    ]
    return drawn


def _points(
    series: Sequence[Bucket], bucket_seconds: float, values: Sequence[float | None]
) -> list[tuple[float, float | None]]:
    """(the bucket's middle, its value), with a gap wherever buckets are missing."""
    points: list[tuple[float, float | None]] = []
    previous: float | None = None
    for bucket, value in zip(series, values, strict=True):
        if previous is not None and bucket.at - previous > bucket_seconds * 1.5:
            points.append((bucket.at, None))
        points.append((bucket.at + bucket_seconds / 2, value))
        previous = bucket.at
    return points


def _axes(frame: Frame, values: Sequence[tuple[float, str]], unit: str) -> list[str]:
    """Grid lines with the value axis' labels, the time axis, and the unit's name."""
    right = WIDTH - RIGHT
    parts = ['<g class="axes" fill="currentColor" font-size="11">']
    for value, label in values:
        y = _n(frame.y(value))
        parts.append(
            f'<line x1="{_n(LEFT)}" x2="{_n(right)}" y1="{y}" y2="{y}" '
            'stroke="currentColor" stroke-opacity="0.2"/>'
        )
        parts.append(
            f'<text x="{_n(LEFT - 6)}" y="{y}" dy="0.35em" text-anchor="end">{label}</text>'
        )
    if unit:
        parts.append(
            f'<text x="{_n(LEFT - 6)}" y="{_n(TOP - 10)}" text-anchor="end">{escape(unit)}</text>'
        )
    bottom = _n(frame.bottom)
    parts.append(
        f'<line x1="{_n(LEFT)}" x2="{_n(right)}" y1="{bottom}" y2="{bottom}" '
        'stroke="currentColor"/>'
    )
    for at, label in time_ticks(frame.start, frame.end):
        x = _n(frame.x(at))
        parts.append(
            f'<line x1="{x}" x2="{x}" y1="{bottom}" y2="{_n(frame.bottom + 4)}" '
            'stroke="currentColor"/>'
        )
        parts.append(
            f'<text x="{x}" y="{_n(frame.bottom + 16)}" text-anchor="middle">{label}</text>'
        )
    parts.append(f'<text x="{_n(right)}" y="{_n(frame.bottom + 28)}" text-anchor="end">UTC</text>')
    parts.append("</g>")
    return parts


def _svg(chart_id: str, title: str, desc: str, body: Sequence[str], extra: float = 0) -> str:
    if not _ID.fullmatch(chart_id):  # it names elements and patterns of the whole page
        raise ValueError(f"a chart's id is letters, digits and hyphens: {chart_id!r}")
    height = TOP + PLOT_HEIGHT + BOTTOM + 6 + extra
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{chart_id}" '
            f'viewBox="0 0 {_n(WIDTH)} {_n(height)}" role="img" '
            f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
            'font-family="system-ui, sans-serif" font-size="12" fill="currentColor">',
            f'<title id="{chart_id}-title">{escape(title)}</title>',
            f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
            *body,
            "</svg>",
        ]
    )


def _nothing(chart_id: str, title: str, words: str) -> str:
    """A chart with nothing to draw says so, in its box and its description."""
    frame_box = (
        f'<rect x="{_n(LEFT)}" y="{_n(TOP)}" width="{_n(WIDTH - LEFT - RIGHT)}" '
        f'height="{_n(PLOT_HEIGHT)}" fill="none" stroke="currentColor" stroke-opacity="0.3"/>'
    )
    message = (
        f'<text x="{_n((LEFT + WIDTH - RIGHT) / 2)}" y="{_n(TOP + PLOT_HEIGHT / 2)}" '
        f'text-anchor="middle">{escape(words)}</text>'
    )
    return _svg(chart_id, title, words, [frame_box, message])


def _key(items: Sequence[tuple[str, str, str]]) -> list[str]:
    """The two lines' key above the plot: a stroke sample of each, then its name."""
    parts, x = [], LEFT
    for name, colour, dash in items:
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{_n(x)}" x2="{_n(x + 28)}" y1="{_n(TOP - 14)}" y2="{_n(TOP - 14)}" '
            f'stroke="{colour}" stroke-width="2"{dashing}/>'
        )
        parts.append(f'<text x="{_n(x + 34)}" y="{_n(TOP - 14)}" dy="0.35em">{escape(name)}</text>')
        x += 150
    return parts


def _peak(series: Sequence[Bucket], values: Sequence[float | None]) -> tuple[float, Bucket] | None:
    known = [
        (value, bucket) for bucket, value in zip(series, values, strict=True) if value is not None
    ]
    return max(known, key=lambda item: item[0]) if known else None


def latency_chart(
    series: Sequence[Bucket], bucket_seconds: float, *, chart_id: str = "latency"
) -> str:
    """p50 and p99 latency of the answered requests, per bucket, in milliseconds."""
    title = "Latency of the answered requests (p50 and p99)"
    series = sorted(series, key=lambda b: b.at)
    if not series:
        return _nothing(chart_id, title, "No requests in the window: no latency to show.")
    p50s = [b.p50_ms for b in series]
    p99s = [b.p99_ms for b in series]
    p50_peak, p99_peak = _peak(series, p50s), _peak(series, p99s)
    if p50_peak is None and p99_peak is None:
        return _nothing(chart_id, title, "No request was answered: no latency to show.")
    top, ticks = nice_top(max(v for v in (*p50s, *p99s) if v is not None))
    frame = Frame(series[0].at, series[-1].at + bucket_seconds, top)
    p50_line = _segments(frame, _points(series, bucket_seconds, p50s))
    p99_line = _segments(frame, _points(series, bucket_seconds, p99s))
    words = [f"p50 and p99 latency {_per(bucket_seconds)}, {_span(series, bucket_seconds)}."]
    for name, peak in (("p99", p99_peak), ("p50", p50_peak)):
        if peak is not None:
            words.append(f"Highest {name}: {peak[0]:,.0f} ms at {_clock(peak[1].at)}.")
    body = [
        *_axes(frame, [(t, value_label(t)) for t in ticks], "ms"),
        *_line(p99_line, colour=P99_COLOUR, dash="7 4", name="p99"),
        *_line(p50_line, colour=P50_COLOUR, dash="", name="p50"),
        *_key([("p50 (median)", P50_COLOUR, ""), ("p99 (dashed)", P99_COLOUR, "7 4")]),
    ]
    return _svg(chart_id, title, " ".join(words), body)


def error_rate_chart(
    series: Sequence[Bucket], bucket_seconds: float, *, chart_id: str = "error-rate"
) -> str:
    """The share of each bucket's requests that failed, 0 to 100 %; no point for a bucket
    without requests (there is no rate to speak of)."""
    title = "Error rate (failed requests, % of requests)"
    series = sorted(series, key=lambda b: b.at)
    requests = sum(b.requests for b in series)
    if requests == 0:
        return _nothing(chart_id, title, "No requests in the window: no error rate to show.")
    rates = [100 * b.failed / b.requests if b.requests else None for b in series]
    frame = Frame(series[0].at, series[-1].at + bucket_seconds, 100.0)
    failed = sum(b.failed for b in series)
    words = [
        f"Share of requests that failed {_per(bucket_seconds)}, "
        f"{_span(series, bucket_seconds)}: {failed:,} of {requests:,} requests failed."
    ]
    peak = _peak(series, rates)
    if peak is not None and peak[0] > 0:
        words.append(f"Highest: {peak[0]:.1f} % at {_clock(peak[1].at)}.")
    segments = _segments(frame, _points(series, bucket_seconds, rates))
    base = _n(frame.bottom)
    area = [
        f"M{_n(segment[0][0])},{base} L"
        + " L".join(f"{_n(x)},{_n(y)}" for x, y in segment)
        + f" L{_n(segment[-1][0])},{base} Z"
        for segment in segments
        if len(segment) > 1
    ]
    body = _axes(frame, [(t, f"{t:.0f} %") for t in (0, 25, 50, 75, 100)], "")
    if area:
        body.append(
            f'<path class="area" d="{" ".join(area)}" fill="{ERROR_COLOUR}" fill-opacity="0.15"/>'
        )
    body += _line(segments, colour=ERROR_COLOUR, dash="", name="error-rate")
    return _svg(chart_id, title, " ".join(words), body)


def _pattern(chart_id: str, index: int) -> str:
    """Band ``index``'s fill: its colour, and its own hatching over it."""
    colour, hatch = PALETTE[index % len(PALETTE)], HATCHES[index % len(HATCHES)]
    parts = [
        f'<pattern id="{chart_id}-fill-{index}" width="8" height="8" '
        'patternUnits="userSpaceOnUse">',
        f'<rect width="8" height="8" fill="{colour}"/>',
    ]
    if hatch == "dots":
        parts.append('<circle cx="4" cy="4" r="1.6" fill="#000" fill-opacity="0.6"/>')
    elif hatch:
        parts.append(f'<path d="{hatch}" stroke="#000" stroke-opacity="0.6" stroke-width="1.2"/>')
    parts.append("</pattern>")
    return "".join(parts)


def _band_path(
    frame: Frame,
    runs: Sequence[Sequence[Bucket]],
    bucket_seconds: float,
    below: dict[float, int],
    target: str,
) -> str:
    """One target's band: per bucket, from what the targets before it served up to that
    plus its own; one closed outline per run of adjacent buckets."""
    outlines = []
    for run in runs:
        upper, lower = [], []
        for b in run:
            left, right = _n(frame.x(b.at)), _n(frame.x(b.at + bucket_seconds))
            base = below.get(b.at, 0)
            high = _n(frame.y(base + b.served_by.get(target, 0)))
            upper += [f"{left},{high}", f"{right},{high}"]
        for b in reversed(run):
            left, right = _n(frame.x(b.at)), _n(frame.x(b.at + bucket_seconds))
            low = _n(frame.y(below.get(b.at, 0)))
            lower += [f"{right},{low}", f"{left},{low}"]
        outlines.append("M" + " L".join(upper + lower) + " Z")
    return " ".join(outlines)


def served_by_chart(
    series: Sequence[Bucket],
    bucket_seconds: float,
    targets: Sequence[str] = (),
    *,
    chart_id: str = "served-by",
) -> str:
    """The answers of each bucket stacked by the target that gave them: one band per
    target, in the order of ``targets`` (the report's, primary first) and then any other
    the series names, alphabetically."""
    title = "Answers by target (stacked)"
    series = sorted(series, key=lambda b: b.at)
    named = {t for b in series for t, n in b.served_by.items() if n > 0}
    order = [t for t in targets if t in named] + sorted(named - set(targets))
    if not order:
        return _nothing(chart_id, title, "No request was answered in the window.")
    totals = {t: sum(b.served_by.get(t, 0) for b in series) for t in order}
    top, ticks = nice_top(max(sum(b.served_by.values()) for b in series))
    frame = Frame(series[0].at, series[-1].at + bucket_seconds, top)
    runs = _runs(series, bucket_seconds)
    below: dict[float, int] = {}
    defs = ["<defs>", *(_pattern(chart_id, i) for i in range(len(order))), "</defs>"]
    bands, legend = [], []
    for i, target in enumerate(order):
        outline = _band_path(frame, runs, bucket_seconds, below, target)
        for b in series:
            below[b.at] = below.get(b.at, 0) + b.served_by.get(target, 0)
        words = f"{target}: {totals[target]:,} answers"
        bands.append(
            f'<path class="band" data-target="{escape(target)}" d="{outline}" '
            f'fill="url(#{chart_id}-fill-{i})" stroke="currentColor" stroke-width="0.5">'
            f"<title>{escape(words)}</title></path>"
        )
        y = frame.bottom + BOTTOM + 8 + i * LEGEND_ROW
        legend.append(
            f'<rect x="{_n(LEFT)}" y="{_n(y)}" width="24" height="14" '
            f'fill="url(#{chart_id}-fill-{i})" stroke="currentColor"/>'
            f'<text x="{_n(LEFT + 32)}" y="{_n(y + 7)}" dy="0.35em">{escape(words)}</text>'
        )
    desc = (
        f"Answers {_per(bucket_seconds)} by the target that gave them, stacked, "
        f"{_span(series, bucket_seconds)}. " + "; ".join(f"{t}: {totals[t]:,}" for t in order) + "."
    )
    body = [
        *defs,
        *_axes(frame, [(t, value_label(t)) for t in ticks], "answers"),
        *bands,
        '<g class="legend">',
        *legend,
        "</g>",
    ]
    return _svg(chart_id, title, desc, body, extra=len(order) * LEGEND_ROW + 8)
