"""The public page's incident history as Atom and RSS feeds, where Statuspage serves them:
``/status/history.atom`` and ``/status/history.rss`` (built with feedgen).

One entry per incident (newest first), its updates in the body, newest first, in the
same customer-facing words as the page; the entry is updated whenever the incident is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from html import escape

from feedgen.feed import FeedGenerator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from standby.statuspage.caching import Rendered, respond
from standby.statuspage.model import PageView

MAX_AGE = 60
ENTRIES = 50


def _when(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def feed(view: PageView, base: str) -> FeedGenerator:
    """The feed of ``view``'s incidents; ``base`` is the page's public address."""
    generator = FeedGenerator()
    generator.id(f"{base}/status")
    generator.title(f"{view.name} - Incident History")
    generator.link(href=f"{base}/status", rel="alternate")
    generator.link(href=f"{base}/status/history.atom", rel="self")
    generator.description(f"Incident history of {view.name}")
    generator.language("en")
    generator.updated(_when(view.updated_at))
    for incident in reversed(view.incidents[:ENTRIES]):  # feedgen prepends each entry
        entry = generator.add_entry()
        link = f"{base}/status/incidents/{incident.id}"
        entry.id(link)
        entry.guid(link, permalink=True)
        entry.title(incident.name)
        entry.link(href=link)
        entry.published(_when(incident.created_at))
        entry.updated(_when(incident.updated_at))
        body = "".join(
            f"<p><small>{_when(u.at):%b %d, %H:%M UTC}</small><br>"
            f"<strong>{escape(u.status.capitalize())}</strong> - {escape(u.body)}</p>"
            for u in incident.updates
        )
        entry.content(body, type="html")
        entry.description(body)
    return generator


def routes(view: Callable[[], Awaitable[PageView]]) -> list[Route]:
    rendered = Rendered()

    async def history(request: Request) -> Response:
        page = await view()
        base = (page.url or str(request.base_url)).rstrip("/")
        atom = request.url.path.endswith(".atom")

        def make() -> tuple[bytes, None]:
            generator = feed(page, base)
            return (
                generator.atom_str(pretty=True) if atom else generator.rss_str(pretty=True)
            ), None

        media = "application/atom+xml" if atom else "application/rss+xml"
        answer = rendered.get(page, (atom, base), make)
        return respond(request, answer, media, max_age=MAX_AGE)

    return [
        Route("/status/history.atom", history, methods=["GET"]),
        Route("/status/history.rss", history, methods=["GET"]),
    ]
