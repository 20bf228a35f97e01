"""Where the public page's views come from: the plan, the open incidents, the journal's
past incidents and hourly figures — read briefly cached, so that a flood of visitors
during an outage costs one build every ``page_ttl`` seconds, not one per visitor.

The figures change slowly (hours) and are read every ``figures_ttl`` seconds; the
incidents every ``page_ttl``, so a new outage shows within seconds.  The database away,
the page still shows what is open (and the last figures read).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from standby.journal.incident_store import IncidentRow, IncidentStore
from standby.journal.traffic_store import HourFigures, TrafficStore
from standby.plan.model import Plan
from standby.statuspage.history import DAY, DAYS
from standby.statuspage.model import PageView, build, components_of

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
        page_ttl: float = 2.0,
        figures_ttl: float = 30.0,
    ) -> None:
        self.plan, self.open_incidents, self.route_targets = plan, open_incidents, route_targets
        self.clock, self.wall = clock, wall
        self.page_ttl, self.figures_ttl = page_ttl, figures_ttl
        self.incidents: IncidentStore | None = None
        self.traffic: TrafficStore | None = None
        self._views: dict[str, tuple[float, PageView]] = {}  # language → built at, view
        self._hours: tuple[float, list[HourFigures]] | None = None

    def attach(self, engine: AsyncEngine) -> None:
        """Read past incidents and figures from the journal's database from now on."""
        self.incidents = IncidentStore(engine)
        self.traffic = TrafficStore(engine)

    def forget(self) -> None:
        """Build the next view afresh (after a change someone must see at once)."""
        self._views.clear()
        self._hours = None

    async def view(self, language: str | None = None) -> PageView:
        """The page as it is now, in ``language`` (the plan's when it has no words for it)."""
        plan = self.plan()
        key = language if language in plan.status_page.languages else plan.status_page.language
        now = self.clock()
        cached = self._views.get(key)
        if cached is not None and now - cached[0] < self.page_ttl:
            return cached[1]
        at = self.wall()
        incidents = await self._incidents(at)
        view = build(
            plan,
            incidents,
            at,
            hours=await self._figures(plan, now, at),
            etas=self._etas(plan, incidents),
            language=key,
        )
        self._views[key] = (now, view)
        return view

    async def _incidents(self, at: float) -> list[IncidentRow]:
        found = {i.id: i for i in self.open_incidents() if not i.component.startswith("target:")}
        if self.incidents is not None:
            try:
                for row in await self.incidents.public(since=at - DAYS * DAY):
                    found.setdefault(row.id, row)
            except Exception as exc:  # the database away: the page shows what is open
                log.warning("status page: could not read past incidents: %s", exc)
        return sorted(found.values(), key=lambda i: i.opened_at, reverse=True)

    async def _figures(self, plan: Plan, now: float, at: float) -> list[HourFigures] | None:
        if self.traffic is None:
            return None
        if self._hours is not None and now - self._hours[0] < self.figures_ttl:
            return self._hours[1]
        routes = sorted({r for _, _, routes in components_of(plan) for r in routes})
        try:
            hours = await self.traffic.hours(routes, since=at - DAYS * DAY)
        except Exception as exc:
            log.warning("status page: could not read the traffic figures: %s", exc)
            return self._hours[1] if self._hours is not None else None
        self._hours = (now, hours)
        return hours

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
