"""SVG status badges, one per component and one for the whole page, for a README or an
intranet page: ``/status/badge.svg``, ``/status/badge/{component id or name}.svg``, and
its uptime, ``/status/badge/{component}/uptime.svg?window=24h|7d|30d|90d`` (30 days by
default: what customers experienced, as on the page).

A label and the state in words (never colour alone), escaped, with a ``<title>`` for
screen readers; the colours are the page's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from standby.statuspage.history import WINDOWS
from standby.statuspage.html import WINDOW_WORDS, WORDS, percent
from standby.statuspage.model import PageView

MAX_AGE = 30
COLOURS = {
    "operational": "#1a7f37",
    "degraded_performance": "#9a6700",
    "partial_outage": "#cf222e",
    "major_outage": "#a40e26",
    "under_maintenance": "#0969da",
}
_PAGE_STATUS = {  # the page's indicator → the component vocabulary, for the page's badge
    "none": "operational",
    "minor": "degraded_performance",
    "major": "partial_outage",
    "critical": "major_outage",
    "maintenance": "under_maintenance",
}


def _width(text: str) -> int:
    return 12 + 7 * len(text)  # a monospace-ish estimate: badges need not be exact


def svg(label: str, status: str) -> str:
    return badge(label, WORDS.get(status, status), COLOURS.get(status, "#57606a"))


def uptime_colour(value: float | None) -> str:
    if value is None:
        return "#57606a"
    if value >= 0.999:
        return COLOURS["operational"]
    return COLOURS["degraded_performance"] if value >= 0.99 else COLOURS["major_outage"]


def badge(label: str, words: str, colour: str) -> str:
    """A two-part badge: ``label`` on grey, ``words`` on ``colour``."""
    left, right = _width(label), _width(words)
    label_e, words_e = escape(label), escape(words)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + right}" height="20" '
        f'role="img" aria-label="{label_e}: {words_e}">'
        f"<title>{label_e}: {words_e}</title>"
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="6" y="14">{label_e}</text>'
        f'<text x="{left + 6}" y="14">{words_e}</text></g></svg>'
    )


def routes(view: Callable[[], Awaitable[PageView]]) -> list[Route]:
    headers = {"Cache-Control": f"public, max-age={MAX_AGE}", "X-Content-Type-Options": "nosniff"}

    async def page_badge(request: Request) -> Response:
        page = await view()
        body = svg("status", _PAGE_STATUS[page.indicator])
        return Response(body, media_type="image/svg+xml", headers=headers)

    async def component_badge(request: Request) -> Response:
        wanted = request.path_params["component"]
        for component in (await view()).components:
            if wanted in (component.id, component.name):
                body = svg(component.name, component.status)
                return Response(body, media_type="image/svg+xml", headers=headers)
        return Response(status_code=404)

    async def uptime_badge(request: Request) -> Response:
        wanted = request.path_params["component"]
        window = request.query_params.get("window", "30d")
        if window not in dict(WINDOWS):
            known = ", ".join(name for name, _ in WINDOWS)
            return Response(f"window must be one of {known}", status_code=400)
        for component in (await view()).components:
            if wanted in (component.id, component.name):
                value = component.history.uptime_for(window) if component.history else None
                label = f"{component.name} uptime, {WINDOW_WORDS[window]}"
                body = badge(label, percent(value), uptime_colour(value))
                return Response(body, media_type="image/svg+xml", headers=headers)
        return Response(status_code=404)

    return [
        Route("/status/badge/{component}/uptime.svg", uptime_badge, methods=["GET"]),
        Route("/status/badge.svg", page_badge, methods=["GET"]),
        Route("/status/badge/{component}.svg", component_badge, methods=["GET"]),
    ]
