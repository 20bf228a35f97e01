"""RSS and Atom status feeds (Azure's RSS, a Statuspage page's history.atom), from small
feeds written after the RSS 2.0 and Atom references."""

from __future__ import annotations

import pytest

from standby.watch.official import Level, parse_feed, parse_page
from tests.watch.official.expect import Expect
from tests.watch.official.payloads import HTML_PAGE, atom, atom_entry, rss, rss_item

OP, DEG, MAINT, UNK = Level.OPERATIONAL, Level.DEGRADED, Level.MAINTENANCE, Level.UNKNOWN
NOW = 1782900000.0 + 3600  # 2026-07-01 11:00 UTC
FRESH = "Wed, 01 Jul 2026 10:00:00 Z"
STALE = "Sat, 27 Jun 2026 10:00:00 Z"  # four days before

AZURE_OPEN = rss_item(
    "issues-connecting-to-resources-in-west-us",
    "Issues connecting to resources in West US ",
    "&lt;p&gt;We are investigating a networking issue.&lt;/p&gt;"
    "&lt;p&gt;The next update will be provided in 60 minutes.&lt;/p&gt;",
    FRESH,
    "Azure OpenAI Service",
    "West US",
)
AZURE_MAINT = rss_item("m", "Planned maintenance: Storage", "In progress.", FRESH, "Storage")
AZURE_STALE = rss_item("s", "Forgotten issue", "Investigating.", STALE, "Azure OpenAI Service")
AZURE_RESOLVED = rss_item("r", "[Resolved] Issue in East US", "Fixed.", FRESH, "East US")

ATOM_RESOLVED = atom_entry(
    "a1",
    "Elevated errors",
    "<p><small>Jul <var>1</var>, <var>10:30</var> UTC</small><br><strong>Resolved</strong>"
    " - This incident has been resolved.</p><p><small>Jul <var>1</var>, <var>10:00</var> UTC"
    "</small><br><strong>Investigating</strong> - We are investigating.</p>",
    "2026-07-01T10:30:00Z",
)
ATOM_OPEN = atom_entry(
    "a2",
    "Slow responses",
    "<p><small>Jul <var>1</var>, <var>10:40</var> UTC</small><br><strong>Identified</strong>"
    " - The cause is known. We expect a fix to be deployed by 12:00 UTC.</p>",
    "2026-07-01T10:40:00Z",
)

CASES = [
    pytest.param(rss(), (), Expect(OP, {}, worst=OP), id="empty-feed"),
    pytest.param(
        rss(AZURE_RESOLVED, AZURE_STALE),
        ("Azure OpenAI Service",),
        Expect(OP, {"Azure OpenAI Service": OP}, worst=OP),
        id="all-operational-resolved-and-stale-entries",
    ),
    pytest.param(
        rss(AZURE_OPEN, AZURE_RESOLVED),
        ("azure openai service", "Storage"),
        Expect(DEG, {"azure openai service": DEG, "Storage": OP}, incidents=1, worst=DEG),
        id="degraded-by-an-open-entry",
    ),
    pytest.param(
        rss(AZURE_OPEN),
        (),
        Expect(DEG, {"Azure OpenAI Service": DEG, "West US": DEG}, incidents=1),
        id="no-watch-list-the-categories-of-open-entries",
    ),
    pytest.param(
        rss(AZURE_MAINT),
        ("Storage",),
        Expect(MAINT, {"Storage": MAINT}, maintenances=1, worst=MAINT),
        id="maintenance-in-progress",
    ),
    pytest.param(
        atom(ATOM_RESOLVED, ATOM_OPEN),
        (),
        Expect(DEG, {}, incidents=1, names=("Slow responses",), worst=DEG),
        id="statuspage-history-atom",
    ),
    pytest.param(HTML_PAGE, (), Expect(UNK, {}, error="HTML"), id="html-page"),
    pytest.param(b"<rss><channel><item>", (), Expect(UNK, {}, error="not an RSS"), id="broken-xml"),
    pytest.param(b'{"incidents": []}', (), Expect(UNK, {}, error="not an RSS"), id="json"),
    pytest.param(b"", (), Expect(UNK, {}, error="not an RSS"), id="empty-body"),
]


@pytest.mark.parametrize(("body", "watch", "expect"), CASES)
def test_cases(body: bytes, watch: tuple[str, ...], expect: Expect) -> None:
    expect.check(parse_feed(body, source_url="f", fetched_at=NOW, components=watch))


def test_an_html_entity_in_the_xml_is_untidy_not_unreadable() -> None:
    item = rss_item("n", "Errors&nbsp;in West US", "Investigating.", FRESH)
    [entry] = parse_feed(rss(item), source_url="", fetched_at=NOW).incidents
    assert entry.name == "Errors in West US"


def test_an_open_entry_in_full() -> None:
    [entry] = parse_feed(rss(AZURE_OPEN), source_url="", fetched_at=NOW).incidents
    assert entry.id == "issues-connecting-to-resources-in-west-us@1782900000"
    assert entry.name == "Issues connecting to resources in West US"
    assert entry.status == "open" and entry.impact is DEG and entry.started_at == NOW - 3600
    assert entry.url == "https://azure.status.microsoft/en-us/status/"
    assert entry.components == ("Azure OpenAI Service", "West US")
    [only] = entry.updates
    assert only.body == (
        "We are investigating a networking issue.\nThe next update will be provided in 60 minutes."
    )
    assert entry.eta == "The next update will be provided in 60 minutes."


def test_the_newest_label_of_a_history_entry_is_its_status() -> None:
    [entry] = parse_feed(atom(ATOM_OPEN), source_url="", fetched_at=NOW).incidents
    assert entry.status == "identified"
    assert entry.eta == "We expect a fix to be deployed by 12:00 UTC."


def test_recent_is_a_parameter() -> None:
    reading = parse_feed(rss(AZURE_STALE), source_url="", fetched_at=NOW, recent=7 * 86400)
    assert len(reading.incidents) == 1


def test_a_body_that_looks_like_a_file_name_is_never_opened() -> None:
    # feedparser takes bytes and str for a file name or URL; the parser hands it a stream
    reading = parse_feed(b"/etc/hostname", source_url="", fetched_at=NOW)
    assert reading.error is not None and reading.indicator is UNK


def test_a_feed_cannot_be_a_decoded_document() -> None:
    reading = parse_page("feed", {"a": 1}, source_url="", fetched_at=0)
    assert reading.error is not None and reading.indicator is UNK
