"""RSS and Atom status feeds (Azure's, a Statuspage page's ``history.atom``, …), read
with ``feedparser``.

A feed lists posts, not state. An entry is an open incident when it is recent (updated
within ``recent`` seconds of the fetch) and carries no resolution marker: a title such as
"[Resolved] …" or "Resolved: …", or, first among the status labels of its text (pages list
updates newest first, "Resolved - This incident has been resolved."), a label that ends
it. Azure's feed simply drops an entry once resolved. Entries say nothing of severity, so
an open one is ``degraded``; one whose title names a maintenance is a maintenance. The
entry's categories are its components.
"""

from __future__ import annotations

import calendar
import io
import re
import xml.sax
from collections.abc import Sequence
from typing import Any

import feedparser

from standby.watch.official.decode import looks_like_html, plain_text, text_of
from standby.watch.official.eta import find_eta
from standby.watch.official.model import (
    Level,
    OfficialIncident,
    OfficialUpdate,
    Reading,
    worst_level,
)

RECENT = 2 * 86400.0  # an unresolved entry older than this is taken as forgotten, not open
_CLOSED_TITLE = re.compile(r"^\W*(resolved|completed|mitigated|closed)\b", re.IGNORECASE)
_LABEL = re.compile(
    r"\b(resolved|completed|postmortem|mitigated|investigating|identified|monitoring"
    r"|update|scheduled|in progress|verifying)\s*[-\u2013\u2014:]",
    re.IGNORECASE,
)
_ENDING = frozenset({"resolved", "completed", "postmortem", "mitigated"})


def parse_feed(
    body: bytes | str,
    *,
    source_url: str,
    fetched_at: float,
    components: Sequence[str] = (),
    recent: float = RECENT,
) -> Reading:
    """An RSS or Atom feed → a reading. ``components``: the watched categories ([]: the
    categories of the open entries); a watched one no open entry names is operational."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    if looks_like_html(text_of(data[:4096])):
        return Reading.failed(source_url, fetched_at, "an HTML page, not a feed")
    # a stream, never bytes or str: feedparser takes those for a file name or a URL
    parsed = feedparser.parse(io.BytesIO(data))
    problem = parsed.get("bozo_exception")
    if not parsed.get("version"):
        return Reading.failed(
            source_url, fetched_at, f"not an RSS or Atom feed ({problem or 'unknown format'})"
        )
    if isinstance(problem, xml.sax.SAXException) and "undefined entity" not in str(problem):
        # truncated or broken, so entries may be lost (an HTML entity such as &nbsp; is
        # only untidy: feedparser's lenient parser reads it)
        return Reading.failed(source_url, fetched_at, f"not an RSS or Atom feed: {problem}")
    incidents: list[OfficialIncident] = []
    maintenances: list[OfficialIncident] = []
    for entry in parsed.entries:
        record = _open_entry(entry, fetched_at, recent)
        if record is None:
            continue
        (maintenances if record.impact is Level.MAINTENANCE else incidents).append(record)
    watch = {name.casefold(): name for name in components}
    levels: dict[str, Level] = {name: Level.OPERATIONAL for name in components}
    for record in (*incidents, *maintenances):
        for category in record.components:
            name = watch.get(category.casefold()) if watch else category
            if name is not None:
                levels[name] = worst_level([levels.get(name, Level.UNKNOWN), record.impact])
    indicator = worst_level(
        [Level.OPERATIONAL, *(record.impact for record in (*incidents, *maintenances))]
    )
    return Reading(
        source_url=source_url,
        fetched_at=fetched_at,
        indicator=indicator,
        components=levels,
        incidents=tuple(incidents),
        maintenances=tuple(maintenances),
    )


def _when(entry: Any, key: str) -> float | None:
    # dict.get: feedparser's own get() maps updated_parsed to published_parsed, with a
    # deprecation warning
    moment = dict.get(entry, key)
    return float(calendar.timegm(moment)) if moment else None


def _open_entry(entry: Any, fetched_at: float, recent: float) -> OfficialIncident | None:
    published = _when(entry, "published_parsed")
    stamps = [t for t in (published, _when(entry, "updated_parsed")) if t is not None]
    if not stamps or fetched_at - max(stamps) > recent:
        return None  # undated entries cannot be judged recent
    at = max(stamps)
    title = " ".join(str(entry.get("title", "")).split())
    markup = ""
    content = entry.get("content")
    if content:
        markup = str(content[0].get("value", ""))
    markup = markup or str(entry.get("summary", ""))
    text = plain_text(markup)
    label = _LABEL.search(text)
    status = label.group(1).lower() if label else "open"
    if _CLOSED_TITLE.search(title) or status in _ENDING:
        return None
    maintenance = "maintenance" in title.lower()
    update = OfficialUpdate(at=at, status=status, body=text)
    ident = str(entry.get("id") or entry.get("link") or title)
    categories = (str(tag.get("term", "")).strip() for tag in entry.get("tags") or [])
    return OfficialIncident(
        # a guid alone has been reused for separate incidents (Azure): add the date
        id=f"{ident}@{int(published or at)}",
        name=title,
        status=status,
        impact=Level.MAINTENANCE if maintenance else Level.DEGRADED,
        started_at=published or at,
        url=str(entry.get("link", "")),
        updates=(update,),
        eta=find_eta((update,)),
        components=tuple(dict.fromkeys(c for c in categories if c)),
    )
