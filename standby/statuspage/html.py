"""The public status page as HTML, for people: ``GET /status``.

Server-rendered from the same ``PageView`` as the API (``statuspage.model``), with jinja2
autoescaping every value; no JavaScript at all, so it works with scripts off.  Accessible
by construction: one ``h1``, labelled sections, lists, ``<time datetime>``, a visible
focus ring, the state always in words beside its colour (never colour alone), light and
dark by the visitor's own setting.  Not yet here: the 90-day bars and uptime figures
(they need daily aggregates the journal does not keep yet), feeds and subscriptions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from standby.statuspage.caching import cached
from standby.statuspage.model import PageView, iso

MAX_AGE = 10
WORDS = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
}
SYMBOLS = {"none": "✓", "minor": "!", "major": "!", "critical": "✕", "maintenance": "🛠"}


def _human(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%b %d, %H:%M UTC")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("standby.statuspage", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(words=WORDS, symbols=SYMBOLS, iso=iso, human=_human)
    return env


def render(env: jinja2.Environment, view: PageView) -> str:
    return env.get_template("page.html").render(
        view=view,
        upcoming=[m for m in view.maintenances if m.status != "completed"],
        resolved=[i for i in view.incidents if i.status == "resolved"][:20],
    )


def routes(view: Callable[[], Awaitable[PageView]]) -> list[Route]:
    env = environment()

    async def page(request: Request) -> Response:
        body = render(env, await view()).encode()
        headers = {
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
        }
        return cached(request, body, "text/html", max_age=MAX_AGE, headers=headers)

    return [Route("/status", page, methods=["GET"]), Route("/status/", page, methods=["GET"])]
