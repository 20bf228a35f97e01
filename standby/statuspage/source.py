"""Where the public page's views come from: the plan, the open incidents, the journal's
past incidents and hourly figures — so that a flood of visitors during an outage costs
a lookup each, and a build happens only when the page changes.

* The figures change by the hour: summed by the database per route and day and per
  uptime window, merged per component (``history.merge``),
  every ``figures_ttl`` seconds — after the first time, in the background, while builds
  go on with the last ones.
* Past incidents are read from the database when the open ones change (one opened,
  updated or resolved) and every ``figures_ttl`` seconds; the open ones are in memory.
* A view is built again only when something it shows changed — an open incident, the
  figures, or the time passing a moment the page depends on (``model.next_change``: a
  new day, a maintenance window, a publish step) — one build at a time: visitors
  arriving meanwhile get the same view.  An unchanged view keeps its ETag, so
  revalidating visitors get 304s, and everything rendered from it stays in memory.

The database away, the page still shows what is open (and the last figures read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from standby.journal.incident_store import IncidentRow, IncidentStore
from standby.journal.traffic_store import TrafficStore, summarise_routes
from standby.plan.model import Plan
from standby.statuspage.history import DAY, DAYS, WINDOWS, Summary, merge
from standby.statuspage.model import (
    PageView,
    build,
    components_of,
    maintenance_spans,
    next_change,
)

log = logging.getLogger("standby.statuspage")


class PageSource:
    def __init__(
        self,
        plan: Callable[[], Plan],
        open_incidents: Callable[[], list[IncidentRow]],
        *,
        route_targets: Callable[[Plan], dict[str, list[str]]],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        max_age: float = 60.0,
        figures_ttl: float = 30.0,
    ) -> None:
        self.plan, self.open_incidents, self.route_targets = plan, open_incidents, route_targets
        self.clock, self.wall = clock, wall
        # a view is built again after ``max_age`` seconds even if nothing seemed to change
        self.max_age, self.figures_ttl = max_age, figures_ttl
        self.incidents: IncidentStore | None = None
        self.traffic: TrafficStore | None = None
        # language → (valid until (wall), the open incidents' mark, the figures, the view)
        self._views: dict[str, tuple[float, tuple[Any, ...], object, PageView]] = {}
        self._generation = 0  # forget() moves it: a build under way then is not kept
        self._summaries: tuple[float, dict[str, Summary]] | None = None
        # read at, the open incidents' mark then, the public incidents read
        self._past: tuple[float, tuple[Any, ...], list[IncidentRow]] | None = None
        self._building = asyncio.Lock()
        self._reading: asyncio.Task[None] | None = None  # figures being read

    def attach(self, engine: AsyncEngine) -> None:
        """Read past incidents and figures from the journal's database from now on."""
        self.incidents = IncidentStore(engine)
        self.traffic = TrafficStore(engine)

    def forget(self) -> None:
        """Build the next view afresh (after a change someone must see at once)."""
        self._generation += 1
        self._views.clear()
        self._summaries = None
        self._past = None

    def _mark(self) -> tuple[Any, ...]:
        """What the open incidents look like: a view built under another mark is old."""
        return tuple((i.id, i.status, i.updated_at, len(i.events)) for i in self.open_incidents())

    async def view(self, language: str | None = None) -> PageView:
        """The page as it is now, in ``language`` (the plan's when it has no words for it)."""
        plan = self.plan()
        key = language if language in plan.status_page.languages else plan.status_page.language
        self._refresh_figures(plan)
        cached = self._views.get(key)
        if cached is not None and self._fresh(cached):
            return cached[3]
        async with self._building:  # one build at a time; the others get its view
            cached = self._views.get(key)
            if cached is not None and self._fresh(cached):
                return cached[3]
            now, mark, generation = self.clock(), self._mark(), self._generation
            at = self.wall()
            incidents = await self._incidents(now, at)
            summaries = await self._figures(plan)
            view = build(
                plan,
                incidents,
                at,
                summaries=summaries,
                etas=self._etas(plan, incidents),
                language=key,
            )
            if cached is not None and replace(view, updated_at=cached[3].updated_at) == cached[3]:
                view = cached[3]  # the same page: the same object, its renderings, its ETag
            if generation == self._generation:
                until = min(next_change(plan, incidents, at), at + self.max_age)
                self._views[key] = (until, mark, summaries, view)
            return view

    def _fresh(self, cached: tuple[float, tuple[Any, ...], object, PageView]) -> bool:
        current = self._summaries[1] if self._summaries is not None else None
        return self.wall() < cached[0] and cached[1] == self._mark() and cached[2] is current

    async def _incidents(self, now: float, at: float) -> list[IncidentRow]:
        found = {i.id: i for i in self.open_incidents() if not i.component.startswith("target:")}
        if self.incidents is not None:
            mark = self._mark()
            past = self._past
            if past is None or past[1] != mark or now - past[0] >= self.figures_ttl:
                try:
                    rows = await self.incidents.public(since=at - DAYS * DAY)
                    past = self._past = (now, mark, rows)
                except Exception as exc:  # the database away: the page shows what is open
                    log.warning("status page: could not read past incidents: %s", exc)
            for row in past[2] if past is not None else ():
                found.setdefault(row.id, row)
        return sorted(found.values(), key=lambda i: i.opened_at, reverse=True)

    async def _figures(self, plan: Plan) -> dict[str, Summary] | None:
        """The components' folded figures (the first time, read at once)."""
        if self.traffic is None:
            return None
        if self._summaries is None:
            await self._read(plan)
        return self._summaries[1] if self._summaries is not None else None

    def _refresh_figures(self, plan: Plan) -> None:
        """Read the figures again in the background when they are ``figures_ttl`` old."""
        if self.traffic is None or self._summaries is None:
            return
        if self.clock() - self._summaries[0] >= self.figures_ttl and (
            self._reading is None or self._reading.done()
        ):
            self._reading = asyncio.create_task(self._read(plan))

    async def _read(self, plan: Plan) -> None:
        assert self.traffic is not None
        now, at = self.clock(), self.wall()
        routes = sorted({r for _, _, routes in components_of(plan) for r in routes})
        try:
            # summed by the database: a few rows per route and day come back
            found = await summarise_routes(
                self.traffic.engine,
                routes,
                since=at - DAYS * DAY,
                now=at,
                windows=WINDOWS,
                maintenance=maintenance_spans(plan),
            )
            summaries = {
                name: merge([found[route] for route in names])
                for name, _, names in components_of(plan)
            }
        except Exception as exc:
            log.warning("status page: could not read the traffic figures: %s", exc)
            self._summaries = (now, self._summaries[1] if self._summaries else {})
            return
        self._summaries = (now, summaries)

    async def aclose(self) -> None:
        """Let a read of the figures under way end."""
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reading

    def _etas(self, plan: Plan, incidents: list[IncidentRow]) -> dict[str, str]:
        """A route incident's estimate of restoration: the one the provider of one of
        its targets published on its own page (attached to Standby's incident about
        that target)."""
        declared: dict[str, str] = {}  # target key → the provider's estimate
        for incident in self.open_incidents():
            if incident.component.startswith("target:") and incident.official:
                eta = _first_eta(incident.official)
                if eta:
                    declared[incident.component.removeprefix("target:")] = eta
        if not declared:
            return {}
        targets = self.route_targets(plan)
        found = {}
        for incident in incidents:
            if incident.open and incident.component.startswith("route:"):
                route = incident.component.removeprefix("route:")
                for key in targets.get(route, []):
                    if key in declared:
                        found[incident.id] = declared[key]
                        break
        return found


def _first_eta(official: dict[str, Any]) -> str | None:
    for declared in official.get("incidents") or []:
        if isinstance(declared, dict) and declared.get("eta"):
            return str(declared["eta"])
    return None
