"""Readers of LLM providers' official status pages, in one vocabulary, and their poller.

    pages.resolve(kind, base_url, plan's status_page) ─▶ StatusPageSpec (url, format,
        components)                                         │
    poller.OfficialWatcher ── conditional GET ─▶ formats.parse_page ─▶ Reading
        (PollSchedule: jittered interval,            ├─ statuspage.py  Statuspage v2
         backoff after errors)                       ├─ gcloud.py      Google Cloud
                                                     └─ feed.py        RSS / Atom
    ─▶ on_reading(provider, Reading)

A page that cannot be read is a reading with ``error`` set and level ``unknown``: not
knowing is never "down".
"""

from standby.watch.official.feed import parse_feed
from standby.watch.official.formats import parse_page
from standby.watch.official.gcloud import parse_google_cloud
from standby.watch.official.model import (
    Level,
    OfficialIncident,
    OfficialUpdate,
    Reading,
    worst_level,
)
from standby.watch.official.pages import Format, StatusPageSpec, builtin, resolve
from standby.watch.official.poller import FetchLimits, OfficialWatcher, OnReading, PollSchedule
from standby.watch.official.statuspage import parse_statuspage, parse_statuspage_webhook

__all__ = [
    "FetchLimits",
    "Format",
    "Level",
    "OfficialIncident",
    "OfficialUpdate",
    "OfficialWatcher",
    "OnReading",
    "PollSchedule",
    "Reading",
    "StatusPageSpec",
    "builtin",
    "parse_feed",
    "parse_google_cloud",
    "parse_page",
    "parse_statuspage",
    "parse_statuspage_webhook",
    "resolve",
    "worst_level",
]
