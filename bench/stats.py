"""Percentiles and small summaries of latency samples (milliseconds)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

Summary = dict[str, float | int | None]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation; ``None`` when empty."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summarize(values: Sequence[float]) -> Summary:
    """Count, mean, p50, p90, p99 and max of ``values``."""
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
    }


def median(values: Sequence[float | None]) -> float | None:
    """Median of the non-``None`` values, or ``None``."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def diff(a: float | None, b: float | None) -> float | None:
    """``a - b`` when both are known."""
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` when both are known and ``b`` is not zero."""
    return None if a is None or b is None or b == 0 else a / b
