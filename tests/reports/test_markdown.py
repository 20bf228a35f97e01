"""The report as Markdown: every section in the postmortem's order, the figures written
as people read them, the provider's silence said in words, and text from outside that
can neither break a table nor inject markup."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from standby.reports import markdown
from standby.reports.markdown import SECTIONS, render_markdown
from standby.reports.model import Report
from tests.reports import sample

UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def sections(document: str) -> dict[str, str]:
    """Each ``## `` section's text, by its heading."""
    found: dict[str, str] = {}
    for chunk in document.split("\n## ")[1:]:
        heading, _, body = chunk.partition("\n")
        found[heading] = body
    return found


def tables(document: str) -> list[list[str]]:
    """Every table of ``document``: its lines, header first."""
    found: list[list[str]] = []
    previous = ""
    for line in document.splitlines():
        if line.startswith("|"):
            if not previous.startswith("|"):
                found.append([])
            found[-1].append(line)
        previous = line
    return found


@pytest.mark.parametrize("report", [sample.outage(), sample.unpublished(), sample.quiet()])
def test_every_section_in_the_postmortem_order(report: Report) -> None:
    document = render_markdown(report)
    assert re.findall(r"^## (.+)$", document, re.M) == list(SECTIONS)
    assert document.startswith(f"# {report.title}\n")
    assert document.endswith("_Generated 2026-11-18 15:05 UTC from the journal._\n")


OUTAGE = [
    # (section or "" for the head, a line that must be in it)
    (
        "",
        "**Incident** inc_01JDXK2M7QF3 · **Component** route:gpt-4o-mini · **Severity** major"
        " · **Status** resolved · **Window** 2026-11-18 13:50\N{EN DASH}14:50 UTC",
    ),
    ("Summary", "For 40 minutes OpenAI's API timed out"),
    ("Impact", "| Requests | 12,060 |  |"),
    ("Impact", "| Answered by the primary | 4,271 | 35.4 % |"),
    ("Impact", "| Answered by a fallback | 7,621 | 63.2 % |"),
    ("Impact", "| Failed | 158 | 1.3 % |"),
    ("Impact", "| Failed: timeout | 104 | 0.9 % |"),
    ("Impact", "| Failed: server_error | 45 | 0.4 % |"),
    ("Impact", "| Missed by the primary, answered by a fallback | 7,621 | 98.0 % |"),
    ("Impact", "| Failed over (answered after a failed attempt) | 142 | 1.2 % |"),
    ("Impact", "| Streams continued mid-answer by another target | 31 | 0.4 % |"),
    ("Impact", "| Deferred and later completed | 23 | 92.0 % |"),
    ("Impact", "| Client errors (the caller's own, 4xx) | 10 |  |"),
    ("Impact", "| This window | 1,020 ms | 9,450 ms |"),
    ("Impact", "| Baseline (same hours, previous 7 days) | 640 ms | 2,010 ms |"),
    ("Impact", "| Added | +380 ms | +7,440 ms |"),
    (
        "Impact",
        "| Target | Role | Served | Prompt tokens | Completion tokens | cost (plan prices) |",
    ),
    ("Impact", "| openai/gpt-4o-mini | primary | 4,271 | 1,759,652 | 798,677 | 0.7432 |"),
    ("Impact", "| anthropic/claude-3-5-haiku | fallback | 7,621 | 3,139,852 | 1,425,127 | 8.21 |"),
    ("Impact", "| All targets |  | 11,892 | 4,899,504 | 2,223,804 | 8.96 |"),
    ("Impact", "Cost delta of the fallbacks: +6.89 at the plan's prices"),
    ("Impact", "| mobile-app | 6,620 | 90 (1.4 %) | 80 |"),
    ("Detection", "- Detected (the incident opened) 12 s after the first failure."),
    ("Detection", "- Declared on the provider's status page 9 min after Standby detected it."),
    ("Response", "- First request answered by a fallback 3 s after the first failure."),
    ("Response", "- First notification delivered 41 s after the first failure."),
    ("Recovery", "- Primary answered again 38 min after the first failure."),
    ("Recovery", "- Lasted 39 min 53 s, from the first failure to resolution."),
    ("Timeline", "| Time (UTC) | Kind | What happened |"),
    ("Timeline", "| 14:00:19 | opened | Incident opened on route:gpt-4o-mini (major) |"),
    (
        "Root cause",
        "The provider's incident (openai): [Elevated error rates on the API]"
        "(<https://status.openai.com/incidents/01JDXK4V6M2Q>)",
    ),
    (
        "Root cause",
        "- 14:21:40 UTC, identified: We have identified the cause and are "
        "rolling out a mitigation.",
    ),
    ("Root cause", "| timeout | 1,874 |"),
    ("What went well", "- Streams that broke mid-answer were finished by the fallback."),
    ("What went badly", "- The provider's status page declared the incident 9 min after Standby."),
    ("Action items", "- [ ] Lower first_token on route gpt-4o-mini from 30 s to 8 s."),
    ("Action items", "- [ ] Add a second fallback to route gpt-4o-mini."),
]


@pytest.mark.parametrize(("section", "line"), OUTAGE)
def test_the_outage_in_figures(section: str, line: str) -> None:
    document = render_markdown(sample.outage())
    text = sections(document)[section] if section else document.split("\n## ")[0]
    assert line in text, text


def test_the_most_frequent_failures_come_first() -> None:
    impact = sections(render_markdown(sample.outage()))["Impact"]
    classes = re.findall(r"^\| Failed: (\w+) \|", impact, re.M)
    assert classes == ["timeout", "server_error", "rate_limited"]
    clients = re.findall(r"^\| ([a-z-]+) \| [\d,]+ \| [\d,]+ \(", impact, re.M)
    assert clients == ["mobile-app", "support-bot", "nightly-batch"]


def test_an_unpublished_root_cause_says_so_then_what_standby_saw() -> None:
    document = render_markdown(sample.unpublished())
    root = sections(document)["Root cause"].strip().splitlines()
    assert root[0] == "Not published by the provider."
    assert "[" not in sections(document)["Root cause"]  # no link to a page that does not exist
    observed = [line for line in root if line.startswith("| ")][2:]  # below the header
    assert observed == ["| timeout | 1,874 |", "| server_error | 912 |", "| connect | 40 |"]
    assert "- Declared on the provider's status page: not known." in document


def test_an_empty_window_says_not_known_rather_than_zero() -> None:
    document = render_markdown(sample.quiet())
    found = sections(document)
    assert document.split("\n## ")[0].splitlines()[2] == (
        "**Incident** none (a window with no incident) · "
        "**Window** 2026-11-18 13:50\N{EN DASH}14:50 UTC"
    )
    assert "| This window | not known | not known |" in found["Impact"]
    assert "| Failed | 0 | — |" in found["Impact"]
    assert "_No target answered in the window._" in found["Impact"]
    assert "_No client sent a request in the window._" in found["Impact"]
    assert "Cost delta of the fallbacks: none, no fallback answered." in found["Impact"]
    for name in ("Detection", "Response", "Recovery"):
        assert found[name].count(": not known.") == 2, found[name]
    assert found["Timeline"].strip() == "_Nothing happened in the window._"
    assert found["Root cause"].strip().startswith("Not published by the provider.")
    assert found["Action items"].strip().startswith("_No action items._\n")


def test_pipes_in_cells_are_escaped_and_every_row_keeps_its_columns() -> None:
    document = render_markdown(sample.hostile())
    for table in tables(document):
        widths = {len(UNESCAPED_PIPE.findall(line)) for line in table}
        assert len(widths) == 1, table
    assert "| team\\|x | 1 | 1 (100.0 %) | 0 |" in document
    assert "| 14:00:00 | official | a \\| b \\\\\\| c second line |" in document


def test_outside_text_cannot_inject_markup() -> None:
    document = render_markdown(sample.hostile())
    assert document.startswith("# Outage \\| \\<b\\>bold\\</b\\>\n")
    assert "\\<script\\>alert(1)\\</script\\>" in document
    assert "<script>" not in document
    assert "[Errors \\[click\\](javascript:alert(1))](<https://status.openai.com/" in document
    assert "- [ ] \\# not a heading" in document
    assert "- [ ] 1\\. not a list" in document
    assert "- [ ] \\- not an item" in document


def test_a_link_that_is_not_a_web_address_is_shown_not_linked() -> None:
    report = sample.outage()
    report = replace(report, root_cause=replace(report.root_cause, url="javascript:alert(1)"))
    root = sections(render_markdown(report))["Root cause"]
    assert "](<" not in root
    assert "Address: javascript:alert(1)" in root


AT = datetime(2026, 11, 18, 23, 50, tzinfo=UTC).timestamp()

FIGURES = [
    (markdown.duration, 0.4, "0.4 s"),
    (markdown.duration, 2.5, "2.5 s"),
    (markdown.duration, 12.0, "12 s"),
    (markdown.duration, 41.4, "41 s"),
    (markdown.duration, 59.6, "1 min"),
    (markdown.duration, 180.0, "3 min"),
    (markdown.duration, 192.0, "3 min 12 s"),
    (markdown.duration, 3599.7, "1 h"),
    (markdown.duration, 3900.0, "1 h 5 min"),
    (markdown.duration, 97200.0, "1 d 3 h"),
    (markdown.duration, -540.0, "9 min"),
    (markdown.percent, 0.0, "0.0 %"),
    (markdown.percent, 0.0004, "< 0.1 %"),
    (markdown.percent, 0.354, "35.4 %"),
    (markdown.percent, 0.9996, "> 99.9 %"),
    (markdown.percent, 1.0, "100.0 %"),
    (markdown.count, 12060, "12,060"),
    (markdown.money, None, "no price"),
    (markdown.money, 0.0, "0.00"),
    (markdown.money, 8.2147, "8.21"),
    (markdown.money, 1234.5, "1,234.50"),
    (markdown.money, 0.7432, "0.7432"),
    (markdown.money, 0.1, "0.10"),
    (markdown.money, 0.01234, "0.0123"),
    (markdown.money, 0.00001, "< 0.0001"),
    (markdown.money, -0.02, "-0.02"),
    (markdown.signed_money, 6.89, "+6.89"),
    (markdown.signed_money, -0.02, "-0.02"),
    (markdown.signed_money, None, "no price"),
    (markdown.milliseconds, None, "not known"),
    (markdown.milliseconds, 9450.4, "9,450 ms"),
    (markdown.signed_milliseconds, 380.0, "+380 ms"),
    (markdown.signed_milliseconds, -12.0, "-12 ms"),
    (markdown.signed_milliseconds, 0.2, "0 ms"),
]


@pytest.mark.parametrize(("write", "value", "shown"), FIGURES)
def test_figures_for_people(write: object, value: object, shown: str) -> None:
    assert callable(write)
    assert write(value) == shown


def test_shares_of_nothing_are_a_dash() -> None:
    assert markdown.share(0, 0) == "—"
    assert markdown.share(1, 3) == "33.3 %"


def test_a_window_over_midnight_has_both_dates() -> None:
    assert markdown.window(AT, AT + 3600) == "2026-11-18 23:50 \N{EN DASH} 2026-11-19 00:50 UTC"
    assert markdown.window(AT, AT + 30.5) == "2026-11-18 23:50:00\N{EN DASH}23:50:30 UTC"
    report = replace(sample.quiet(), start=AT, end=AT + 3600)
    assert markdown.moment(report, AT + 700) == "2026-11-19 00:01:40"
    assert markdown.moment(sample.outage(), sample.START + 7) == "13:50:07"


@pytest.mark.parametrize(
    ("lag", "sentence"),
    [
        (540.0, "Declared on the provider's status page 9 min after Standby detected it."),
        (-75.0, "Declared on the provider's status page 1 min 15 s before Standby detected it."),
        (0.2, "Declared on the provider's status page as Standby detected it."),
        (None, "Declared on the provider's status page: not known."),
    ],
)
def test_the_providers_lag_either_way(lag: float | None, sentence: str) -> None:
    timings = replace(sample.outage().timings, provider_lag=lag)
    detection = dict(markdown.timings_in_words(timings))["Detection"]
    assert detection[1] == sentence


def test_a_markdown_parser_reads_back_exactly_the_text() -> None:
    """A CommonMark parser with GFM tables (markdown-it-py) finds every table whole, the
    outside text as literal text, no raw HTML, and one link: the provider's page."""
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py comes with rich")
    parser = markdown_it.MarkdownIt("commonmark").enable("table")
    tokens = parser.parse(render_markdown(sample.hostile()))
    inline = [child for token in tokens for child in token.children or []]
    assert not [t for t in [*tokens, *inline] if t.type.startswith("html")]
    assert [t.attrGet("href") for t in inline if t.type == "link_open"] == [
        "https://status.openai.com/incidents/01JDXK4V6M2Q"
    ]
    cells: list[list[str]] = []
    for token, following in itertools.pairwise(tokens):
        if token.type == "tr_open":
            cells.append([])
        if token.type in ("th_open", "td_open"):
            cells[-1].append("".join(c.content for c in following.children or []))
    assert ["team|x", "1", "1 (100.0 %)", "0"] in cells
    assert ["14:00:00", "official", "a | b \\| c second line"] in cells
    assert sum(1 for t in tokens if t.type == "table_open") == 6
    text = " ".join(t.content for t in inline if t.type == "text")
    assert "<script>alert(1)</script>" in text
    assert "[ ] # not a heading" in text
