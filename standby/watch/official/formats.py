"""Format name (the plan's ``status_page.format``) → the parser that reads it."""

from __future__ import annotations

from collections.abc import Sequence

from standby.watch.official.decode import Body
from standby.watch.official.feed import parse_feed
from standby.watch.official.gcloud import parse_google_cloud
from standby.watch.official.model import Reading
from standby.watch.official.pages import Format
from standby.watch.official.statuspage import parse_statuspage


def parse_page(
    format: Format,
    body: Body,
    *,
    source_url: str,
    fetched_at: float,
    components: Sequence[str] = (),
) -> Reading:
    """Read ``body`` as a page of ``format``. Never raises on what the page sent: a body
    that cannot be read gives a reading with ``error`` set."""
    if format == "statuspage":
        return parse_statuspage(
            body, source_url=source_url, fetched_at=fetched_at, components=components
        )
    if format == "google-cloud":
        return parse_google_cloud(
            body, source_url=source_url, fetched_at=fetched_at, components=components
        )
    if isinstance(body, dict | list):
        return Reading.failed(source_url, fetched_at, "a feed is XML, not a decoded document")
    return parse_feed(body, source_url=source_url, fetched_at=fetched_at, components=components)
