"""A report in each of its formats, and what to serve each as."""

from __future__ import annotations

import orjson

from standby.reports.html import render_html
from standby.reports.markdown import render_markdown
from standby.reports.model import Report

FORMATS = ("markdown", "html", "json")
MEDIA_TYPES = {
    "markdown": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
}


def render(report: Report, fmt: str) -> str:
    """The report as Markdown, one self-contained HTML page, or JSON (every figure)."""
    if fmt == "json":
        return orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "html":
        return render_html(report)
    if fmt == "markdown":
        return render_markdown(report)
    raise ValueError(f"unknown report format {fmt!r} (known: {', '.join(FORMATS)})")
