"""A post-outage report as one standalone HTML document, to read on screen, send as a file
or print.

The same sections and the same words as the Markdown (``reports.markdown`` builds the
rows and sentences; this module only lays them out), plus the three charts inline
(``reports.charts``).  Everything is in the one file: inline CSS, inline SVG, no font,
image or script from anywhere, and a Content-Security-Policy that forbids scripts, so a
report opened from a mail attachment fetches nothing and runs nothing.  jinja2 escapes
every value; the charts, which escape their own text, are the only markup let through.

Printed, it needs no colour (the charts carry dashes and hatchings, the tables rules),
keeps a table or a chart on one page, and writes each link's address after it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import jinja2
from markupsafe import Markup, escape

from standby.reports import charts, markdown
from standby.reports.model import Report

# no script, no fetch, no form: styles inline only
CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def anchor(section: str) -> str:
    """A section's id: "What went well" → ``what-went-well``."""
    return re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-")


def iso(at: float) -> str:
    """``datetime`` attribute of a ``<time>``."""
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


_CODE = re.compile(r"`([^`]+)`")


def inline(sentence: str) -> Markup:
    """A derived sentence, escaped, its `code` spans (plan keys, commands) as <code>."""
    escaped = str(escape(sentence))
    return Markup(_CODE.sub(r"<code>\1</code>", escaped))


def environment() -> jinja2.Environment:
    """The reports' own jinja2 environment (the status page has its own): templates
    shipped in the package, every value escaped, an unknown name an error."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("standby.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["inline"] = inline
    env.globals.update(
        anchor=anchor,
        iso=iso,
        moment=markdown.moment,
        utc=markdown.utc,
        is_web_link=markdown.is_web_link,
    )
    return env


def render_html(report: Report) -> str:
    """The report as a complete HTML document."""
    impact = report.impact
    targets = [figures.target for figures in impact.targets]
    figures = [
        ("Latency", charts.latency_chart(report.series, report.bucket_seconds)),
        ("Error rate", charts.error_rate_chart(report.series, report.bucket_seconds)),
        (
            "Answers by target",
            charts.served_by_chart(report.series, report.bucket_seconds, targets),
        ),
    ]
    return (
        environment()
        .get_template("report.html")
        .render(
            report=report,
            csp=CSP,
            captions=markdown.CAPTIONS,
            status=markdown.status_line(report),
            impact_header=markdown.IMPACT_HEADER,
            impact_rows=markdown.impact_rows(impact),
            impact_note=markdown.IMPACT_NOTE,
            latency_header=markdown.LATENCY_HEADER,
            latency_rows=markdown.latency_rows(impact),
            target_header=markdown.TARGET_HEADER,
            target_rows=markdown.target_rows(impact),
            cost_delta=markdown.cost_delta_sentence(impact),
            client_header=markdown.CLIENT_HEADER,
            client_rows=markdown.client_rows(impact),
            timings=dict(markdown.timings_in_words(report.timings)),
            observed=markdown.observed_rows(report.root_cause),
            not_published=markdown.NOT_PUBLISHED,
            no_target=markdown.NO_TARGET,
            no_clients=markdown.NO_CLIENTS,
            no_timeline=markdown.NO_TIMELINE,
            # the charts escape their own text: the one markup let through as it is
            charts=[(title, Markup(svg)) for title, svg in figures],
        )
    )
