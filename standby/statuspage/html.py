"""The public status page as HTML, for people: ``GET /status``, each incident's own page
(``/status/incidents/{id}``, its permalink) and the paginated incident history
(``/status/history?page=N``).

Server-rendered from the same ``PageView`` as the API (``statuspage.model``), with jinja2
autoescaping every value; no JavaScript at all, so it works with scripts off.  Accessible
by construction: one ``h1``, labelled sections, lists, ``<time datetime>``, a visible
focus ring, the state always in words beside its colour (never colour alone: every day
of the 90-day bar carries its figures as text for screen readers and as a tooltip, and a
table of the days that mattered is one disclosure away), light and dark by the
visitor's own setting.  The language of worded updates is the visitor's (``?lang=`` or
``Accept-Language``) when the plan has words for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from standby.statuspage.caching import Rendered, respond
from standby.statuspage.history import Day
from standby.statuspage.model import PageView, iso

MAX_AGE = 10
PER_PAGE = 20  # incidents per page of the history
WORDS = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
    "no_data": "No data",
}
WINDOW_WORDS = {"24h": "24 hours", "7d": "7 days", "30d": "30 days", "90d": "90 days"}
SYMBOLS = {"none": "✓", "minor": "!", "major": "!", "critical": "✕", "maintenance": "🛠"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Accept-Language",
}

View = Callable[[str | None], Awaitable[PageView]]


def _human(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%b %d, %H:%M UTC")


def percent(value: float | None) -> str:
    """An uptime as people read it: 99.95 %, 100 %, or "no data"."""
    if value is None:
        return "no data"
    shown = f"{value * 100:.2f}".rstrip("0").rstrip(".")
    if shown == "100" and value < 1:
        shown = "99.99"  # never round a failure away
    return f"{shown} %"


def day_text(day: Day) -> str:
    """One day of the bar in words: the date, its state, its figures, its incidents."""
    text = f"{day.date}: {WORDS[day.state]}"
    if day.requests:
        text += (
            f", {percent(day.uptime)} of {day.requests:,} requests served well"
            f" ({day.failed:,} failed, {day.slow:,} slow)"
        )
    elif day.state != "no_data":
        text += ", no requests"
    if day.incidents:
        text += "; " + "; ".join(day.incidents)
    if day.maintenance:
        text += "; scheduled maintenance"
    return text


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("standby.statuspage", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(
        words=WORDS,
        window_words=WINDOW_WORDS,
        symbols=SYMBOLS,
        iso=iso,
        human=_human,
        percent=percent,
        day_text=day_text,
        lang="en",
        subscribe=False,
    )
    return env


def render(env: jinja2.Environment, view: PageView, **values: Any) -> str:
    return env.get_template("page.html").render(
        view=view,
        upcoming=[m for m in view.maintenances if m.status != "completed"],
        resolved=[i for i in view.incidents if i.status == "resolved"][:10],
        **values,
    )


def language(request: Request) -> str | None:
    """The visitor's language: ``?lang=``, else the first of ``Accept-Language``."""
    asked = request.query_params.get("lang") or request.headers.get("accept-language", "")
    first = asked.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return first.split("-", 1)[0][:8] or None


def routes(view: View, *, subscribe: bool = False) -> list[Route]:
    """The pages; ``subscribe``: link to the subscription form."""
    env = environment()
    env.globals["subscribe"] = subscribe
    rendered = Rendered()  # each page rendered once per built view and language

    def answer(
        request: Request, shown: PageView, key: tuple[str, ...], make: Callable[[], str]
    ) -> Response:
        found = rendered.get(shown, key, lambda: (make().encode(), None))
        return respond(request, found, "text/html", max_age=MAX_AGE, headers=HEADERS)

    async def page(request: Request) -> Response:
        shown = await view(language(request))
        lang = shown.language
        return answer(request, shown, ("page", lang), lambda: render(env, shown, lang=lang))

    async def incident(request: Request) -> Response:
        shown = await view(language(request))
        lang = shown.language
        wanted = request.path_params["incident_id"]
        found = next((i for i in shown.incidents if i.id == wanted), None)
        if found is None:
            raise HTTPException(404, f"No incident {wanted!r} on this page.")
        template = env.get_template("incident.html")
        return answer(
            request,
            shown,
            ("incident", found.id, lang),
            lambda: template.render(view=shown, incident=found, lang=lang),
        )

    async def history(request: Request) -> Response:
        shown = await view(language(request))
        lang = shown.language
        past = list(shown.incidents)
        pages = max(1, -(-len(past) // PER_PAGE))
        try:
            number = int(request.query_params.get("page", "1"))
        except ValueError:
            raise HTTPException(400, "page must be a number") from None
        if not 1 <= number <= pages:
            raise HTTPException(404, f"There are {pages} page(s) of history.")
        first = (number - 1) * PER_PAGE
        return answer(
            request,
            shown,
            ("history", str(number), lang),
            lambda: env.get_template("history.html").render(
                view=shown,
                shown=past[first : first + PER_PAGE],
                number=number,
                pages=pages,
                lang=lang,
            ),
        )

    return [
        Route("/status", page, methods=["GET"]),
        Route("/status/", page, methods=["GET"]),
        Route("/status/history", history, methods=["GET"]),
        Route("/status/incidents/{incident_id}", incident, methods=["GET"]),
    ]
