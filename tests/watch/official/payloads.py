"""Small status-page payloads, written from the public API references of each format
(Statuspage v2 summary / incidents / scheduled maintenances, Google Cloud's
incidents.json, RSS 2.0 and Atom), and the path of the real payloads in the shared
fixtures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

# the real vendor payloads the project keeps beside the repository (DESIGN.md)
# copies of ../shared/fixtures/status (real public payloads), so a clean clone runs them
FIXTURES = Path(__file__).resolve().parent / "fixtures"

PAGE = {"id": "p1", "name": "Example", "url": "https://status.example.com"}
T0 = "2026-07-01T10:00:00Z"  # 1782900000.0
T0_EPOCH = 1782900000.0


def component(name: str, status: str = "operational", **extra: Any) -> dict[str, Any]:
    return {"id": name.lower().replace(" ", "-"), "name": name, "status": status, **extra}


def summary(
    statuses: dict[str, str],
    indicator: str = "none",
    incidents: list[dict[str, Any]] | None = None,
    maintenances: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Statuspage v2 ``summary.json``."""
    return {
        "page": PAGE,
        "status": {"indicator": indicator, "description": "…"},
        "components": [component(name, status) for name, status in statuses.items()],
        "incidents": incidents or [],
        "scheduled_maintenances": maintenances or [],
    }


def update(status: str, body: str, at: str) -> dict[str, Any]:
    return {"id": f"u-{at}", "status": status, "body": body, "created_at": at, "display_at": at}


def incident(
    ident: str,
    name: str,
    status: str,
    impact: str,
    updates: list[dict[str, Any]],
    components: Sequence[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": ident,
        "name": name,
        "status": status,
        "impact": impact,
        "created_at": T0,
        "started_at": T0,
        "shortlink": f"https://stspg.io/{ident}",
        "incident_updates": updates,
        "components": [component(c, "major_outage") for c in components],
        **extra,
    }


def as_bytes(document: Any) -> bytes:
    return orjson.dumps(document)


def google_incident(
    ident: str,
    title: str,
    status_impact: str,
    *,
    severity: str = "medium",
    end: str | None = None,
    latest: str | None = None,
    updates: Sequence[tuple[str, str, str]] = (),
    current_title: str | None = None,
) -> dict[str, Any]:
    """One entry of Google Cloud's ``incidents.json``; ``updates``: (when, status, text),
    newest first."""
    product: dict[str, Any] = {"title": title, "id": f"id-{ident}"}
    if current_title:
        product["current_title"] = current_title
    listed = [
        {"when": when, "created": when, "status": status, "text": text, "affected_locations": []}
        for when, status, text in updates
    ]
    entry: dict[str, Any] = {
        "id": ident,
        "number": "1",
        "begin": T0,
        "created": T0,
        "modified": T0,
        "external_desc": f"{title} elevated errors",
        "severity": severity,
        "status_impact": status_impact,
        "uri": f"incidents/{ident}",
        "affected_products": [product],
        "updates": listed,
        "most_recent_update": {**listed[0], "status": latest or listed[0]["status"]}
        if listed
        else {"status": latest or status_impact},
        "service_key": f"id-{ident}",
        "service_name": title,
    }
    if end is not None:
        entry["end"] = end
    return entry


def rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        "<title>Azure Status</title><link>https://azure.status.microsoft/en-us/status/</link>"
        "<description>Azure Status</description>"
        "<lastBuildDate>Wed, 01 Jul 2026 10:00:00 Z</lastBuildDate>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def rss_item(guid: str, title: str, description: str, when: str, *categories: str) -> str:
    tags = "".join(f"<category>{c}</category>" for c in categories)
    return (
        f'<item><guid isPermaLink="false">{guid}</guid>'
        "<link>https://azure.status.microsoft/en-us/status/</link>"
        f"{tags}<title>{title}</title><description>{description}</description>"
        f"<pubDate>{when}</pubDate></item>"
    )


def atom(*entries: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        "<id>tag:status.example.com,2005:/history</id><title>Example Status</title>"
        "<updated>2026-07-01T10:00:00Z</updated>" + "".join(entries) + "</feed>"
    ).encode()


def atom_entry(ident: str, title: str, content_html: str, updated: str) -> str:
    escaped = content_html.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f"<entry><id>tag:status.example.com,2005:Incident/{ident}</id>"
        f"<published>{updated}</published><updated>{updated}</updated>"
        f'<link rel="alternate" type="text/html" href="https://status.example.com/incidents/{ident}"/>'
        f'<title>{title}</title><content type="html">{escaped}</content></entry>'
    )


HTML_PAGE = b"<!DOCTYPE html><html><head><title>Status</title></head><body>Sign in</body></html>"
