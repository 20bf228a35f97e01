"""The public status page as one Starlette app: the HTML pages, the Statuspage v2 API,
the feeds, the badges and (when the plan allows them) subscriptions.

``serve`` mounts its routes on the gateway under ``/status``; with
``status_page: {listen: "host:port"}`` the same app also answers alone on its own
address, so the public can be sent there and never reach the gateway's API.  Everything
is read-only but subscribing; nothing here needs or accepts a key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from standby.statuspage.api import routes as api_routes
from standby.statuspage.badges import routes as badge_routes
from standby.statuspage.feeds import routes as feed_routes
from standby.statuspage.html import routes as html_routes
from standby.statuspage.model import PageView

View = Callable[[str | None], Awaitable[PageView]]


def status_routes(view: View, extra: Sequence[BaseRoute] = ()) -> list[BaseRoute]:
    """Every route of the public page (paths start with ``/status``)."""

    async def default() -> PageView:  # machines read the page in its own language
        return await view(None)

    return [
        *api_routes(default),
        *html_routes(view, subscribe=bool(extra)),
        *feed_routes(default),
        *badge_routes(default),
        *extra,
    ]


def status_app(view: View, extra: Sequence[BaseRoute] = ()) -> Starlette:
    """The page alone, for its own address: ``/`` leads to ``/status``."""

    async def home(request: Request) -> Response:
        return Response(status_code=308, headers={"Location": "/status"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    app = Starlette(
        routes=[Route("/", home, methods=["GET"]), *status_routes(view, extra)],
        exception_handlers={HTTPException: http_error},
    )
    app.router.redirect_slashes = False
    return app
