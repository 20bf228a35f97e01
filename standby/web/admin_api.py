"""Operator endpoints: target health, Prometheus metrics, liveness, and the JSON 404.

Served by Starlette: these are not on the hot path, and later pages (status page,
journal views) grow here.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from standby import __version__
from standby.drills.runner import DrillRunner
from standby.health.gate import RegistryGate
from standby.health.registry import HealthRegistry
from standby.journal.service import JournalService
from standby.metrics import Metrics
from standby.routing.router import Router
from standby.statuspage.app import status_routes
from standby.web.alerting import Alerting
from standby.web.clients import ClientKeys
from standby.web.completions_api import completions_routes
from standby.web.drills_api import drills_routes
from standby.web.incidents_api import incidents_routes
from standby.web.journal_api import journal_routes


def admin_app(
    router: Router,
    registry: HealthRegistry,
    gate: RegistryGate,
    metrics: Metrics,
    *,
    admin_token: str,
    metrics_token: str = "",
    clock: Callable[[], float] = time.monotonic,
    journal: JournalService | None = None,
    keys: ClientKeys | None = None,
    alerting: Alerting | None = None,
    drills: DrillRunner | None = None,
    cluster: Callable[[], dict[str, Any]] | None = None,
    state: tuple[str, str] | None = None,
    capacity: Callable[[], dict[str, Any]] | None = None,
) -> Starlette:
    """Operator endpoints, locked by the admin token (``/metrics`` also by its own scrape
    token); with neither token set (a loopback gateway) they are open."""

    def authorised(request: Request) -> None:
        _require(request, [admin_token], "This endpoint needs the plan's admin token.")

    def scraper(request: Request) -> None:
        _require(
            request,
            [admin_token, metrics_token],
            "/metrics needs the plan's metrics token or admin token.",
        )

    async def health(request: Request) -> Response:
        authorised(request)
        now = clock()
        snapshot: dict[str, Any] = registry.snapshot(now)
        for key, silence in gate.silence(now).items():
            snapshot["targets"].setdefault(key, {}).update(silence)
        routes = {}
        for name in router.table.names():
            route = router.plan.routes[name]
            routes[name] = [[ref.target for ref in tier] for tier in route.tier_list()]
        snapshot["routes"] = routes
        snapshot["providers"] = {
            name: {"kind": p.kind, "base_url": p.base_url, "prefill": p.prefill}
            for name, p in router.plan.providers.items()
        }
        snapshot["version"] = __version__
        if journal is not None:
            snapshot["journal"] = journal.status()
        if cluster is not None:
            snapshot["cluster"] = cluster()
        if capacity is not None:
            snapshot["capacity"] = capacity()
        return JSONResponse(snapshot)

    async def prometheus(request: Request) -> Response:
        scraper(request)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = (
            exc.detail
            if exc.status_code != 404
            else (f"Invalid URL ({request.method} {request.url.path})")
        )
        return JSONResponse(
            {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
            status_code=exc.status_code,
        )

    async def cluster_view_route(request: Request) -> Response:
        authorised(request)
        if state is None:
            raise HTTPException(404, "This gateway shares no state (state.url in the plan).")
        from standby.cluster.view import cluster_view

        try:
            view = await cluster_view(*state)
        except (OSError, RedisError) as exc:
            raise HTTPException(503, f"Redis unreachable: {exc}") from None
        view["here"] = cluster() if cluster is not None else None
        return JSONResponse(view)

    routes: list[BaseRoute] = [
        Route("/standby/health", health),
        Route("/standby/cluster", cluster_view_route),
        Route("/metrics", prometheus),
        Route("/healthz", live),
    ]
    routes += completions_routes(journal, keys or ClientKeys({}))
    if journal is not None:
        routes += journal_routes(journal, authorise=authorised)
    if alerting is not None:
        routes += incidents_routes(
            alerting.manager,
            alerting.store,
            alerting.status,
            authorise=authorised,
            plan=lambda: router.plan,
            flush=journal.flush if journal is not None else None,
        )
        if drills is not None:
            routes += drills_routes(drills, authorise=authorised)
        if router.plan.status_page.enabled:  # public and read-only, no token
            routes += status_routes(alerting.page_view, alerting.public_routes())
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    # a trailing slash is a JSON 404 like any unknown path, never a redirect built from
    # the client's Host header
    app.router.redirect_slashes = False
    return app


def _require(request: Request, tokens: Sequence[str], message: str) -> None:
    """401 unless the request's bearer token is one of ``tokens`` (none set: open)."""
    wanted = [token.encode() for token in tokens if token]
    if not wanted:
        return
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip().encode() if auth[:7].lower() == "bearer " else b""
    # compare with every token, always: the time taken says nothing about which matched
    matched = [hmac.compare_digest(given, token) for token in wanted]
    if not any(matched):
        raise HTTPException(401, message)
