"""Drills: a fault injected on purpose for a while, the real path from detection to
notification run against it, and a report with a verdict at the end.

A drill's life: ``start`` puts its fault in the ``Injector`` (every provider of the
process is wrapped, ``drills.faults``) until its end; incidents the detector opens
meanwhile about the drilled target, or a route that uses it, are marked as the drill's
("[DRILL]" in their title, source ``drill``: notifications say so and the public page
leaves them out); when the fault ends the drill waits, at most ``drills.settle``, for
those incidents to resolve, then writes its report from the journal — the incident's
own when one opened, else the drill's window — and judges it against the plan's
``drills.objectives``.  "Added latency" is measured against the same span just before
the drill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter
from sqlalchemy.ext.asyncio import AsyncEngine

from standby.drills.faults import FAULTS, Injection, Injector
from standby.drills.verdict import Verdict, judge
from standby.errors import InvalidRequest
from standby.incidents.manager import route_targets
from standby.journal.drill_store import DrillStore
from standby.journal.incident_store import IncidentRow
from standby.plan.model import Plan
from standby.reports.build import incident_report, window_report
from standby.reports.model import Report

log = logging.getLogger("standby.drills")

DRILL_SOURCE = "drill"  # an incident's source when a drill caused it
TITLE_PREFIX = "[DRILL] "
SETTLE_POLL = 0.5  # seconds between two looks at the drill's incidents
SCHEDULE_TICK = 30.0  # seconds between two looks at the plan's drill schedule


@dataclass
class Drill:
    id: str
    target: str
    fault: str
    share: float
    duration: float
    started_at: float  # wall clock
    ends_at: float
    routes: list[str] = field(default_factory=list)  # the plan's routes that use the target
    scheduled: bool = False  # started by the plan's drills.schedule
    state: str = "running"  # running | settling | done | failed
    incidents: list[str] = field(default_factory=list)
    verdict: Verdict | None = None
    report: Report | None = None
    error: str = ""

    def as_dict(self, *, report: bool = False) -> dict[str, Any]:
        found: dict[str, Any] = {
            "id": self.id,
            "target": self.target,
            "fault": self.fault,
            "share": self.share,
            "duration": self.duration,
            "started_at": self.started_at,
            "ends_at": self.ends_at,
            "routes": list(self.routes),
            "scheduled": self.scheduled,
            "state": self.state,
            "incidents": list(self.incidents),
            "verdict": self.verdict.as_dict() if self.verdict is not None else None,
            "error": self.error or None,
        }
        if report and self.report is not None:
            found["report"] = self.report.as_dict()
        return found


@dataclass
class Context:
    """What a drill needs of the running gateway."""

    plan: Callable[[], Plan]
    engine: AsyncEngine | None  # the journal's database (None: no journal, no report)
    flush: Callable[[], Awaitable[None]] | None
    open_incidents: Callable[[], list[IncidentRow]]
    store: DrillStore | None = None  # where finished drills are kept


class DrillRunner:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.clock, self.wall = clock, wall
        self.injector = Injector(clock=clock, rng=rng)
        self.drills: dict[str, Drill] = {}
        self.context: Context | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ended: dict[str, asyncio.Event] = {}
        # whether this replica starts the scheduled drills now (``cluster.lease``)
        self.leading: Callable[[], bool] = lambda: True

    def attach(self, context: Context) -> None:
        self.context = context

    # -- what the incidents' side asks --------------------------------------------------------
    def drilling(self, component: str) -> str | None:
        """The drill a component's trouble comes from, if one is under way."""
        if component.startswith("target:"):
            return self.injector.drilling(component.removeprefix("target:"))
        if component.startswith("route:") and self.context is not None:
            keys = route_targets(self.context.plan()).get(component.removeprefix("route:"), [])
            for key in keys:
                drill = self.injector.drilling(key)
                if drill is not None:
                    return drill
        return None

    def heard(self, event: str, incident: IncidentRow) -> None:
        """An incident listener: remember the incidents each drill caused."""
        if event != "opened" or incident.source != DRILL_SOURCE:
            return
        for e in incident.events:
            drill = self.drills.get(str((e.data or {}).get("drill", "")))
            if e.kind == "drill" and drill is not None and incident.id not in drill.incidents:
                drill.incidents.append(incident.id)

    # -- running ------------------------------------------------------------------------------
    def start(
        self,
        target: str,
        fault: str,
        duration: float,
        share: float = 1.0,
        *,
        scheduled: bool = False,
    ) -> Drill:
        """Start a drill; ``InvalidRequest`` says what is wrong with it."""
        if self.context is None:
            raise InvalidRequest("drills need a running gateway")
        plan = self.context.plan()
        provider = target.partition("/")[0]
        if provider not in plan.providers:
            known = ", ".join(sorted(plan.providers))
            raise InvalidRequest(f"unknown target {target!r}: its provider is not one of {known}")
        if fault not in FAULTS:
            raise InvalidRequest(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
        if not 0.0 < share <= 1.0:
            raise InvalidRequest("share must be above 0 and at most 1")
        if not 0.0 < duration <= plan.drills.max_duration:
            raise InvalidRequest(
                f"duration must be above 0 and at most {plan.drills.max_duration:g} s "
                "(drills.max_duration)"
            )
        if any(d.state == "running" and d.target == target for d in self.drills.values()):
            raise InvalidRequest(f"a drill on {target} is already running")
        now = self.wall()
        drill = Drill(
            id=f"drill_{int(now)}_{secrets.token_hex(3)}",
            target=target,
            fault=fault,
            share=share,
            duration=duration,
            started_at=now,
            ends_at=now + duration,
            routes=sorted(_routes_of(plan, target)),
            scheduled=scheduled,
        )
        self.drills[drill.id] = drill
        self.injector.add(Injection(drill.id, target, fault, share, self.clock() + duration))
        self._ended[drill.id] = asyncio.Event()
        self._tasks[drill.id] = asyncio.create_task(self._run(drill), name=drill.id)
        log.warning(
            "drill %s: %s on %s for %g s (share %g)", drill.id, fault, target, duration, share
        )
        return drill

    def stop(self, drill_id: str) -> Drill | None:
        """End a drill's fault now (it then settles and reports as usual)."""
        drill = self.drills.get(drill_id)
        if drill is not None and drill.state == "running":
            self._ended[drill_id].set()
        return drill

    async def _run(self, drill: Drill) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended[drill.id].wait(), drill.duration)
            self.injector.remove(drill.id)
            drill.ends_at = min(drill.ends_at, self.wall())
            drill.state = "settling"
            await self._settle(drill)
            drill.report = await self._report(drill)
            if drill.report is not None:
                assert self.context is not None
                drill.verdict = judge(drill.report, self.context.plan().drills.objectives)
            drill.state = "done"
            await self._keep(drill)
            log.warning(
                "drill %s done: %s",
                drill.id,
                "pass" if drill.verdict and drill.verdict.passed else "fail",
            )
        except Exception as exc:  # said on the drill, not lost in a task
            log.exception("drill %s failed", drill.id)
            drill.state, drill.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self.injector.remove(drill.id)

    async def _keep(self, drill: Drill) -> None:
        """The finished drill into the journal (a failure to is said, not raised)."""
        store = self.context.store if self.context is not None else None
        if store is None:
            return
        report = drill.report.as_dict() if drill.report is not None else None
        try:
            await store.save(drill.as_dict(), report, scheduled=drill.scheduled)
        except Exception as exc:
            log.warning("drill %s: could not keep it in the journal: %s", drill.id, exc)

    # -- the plan's schedule ----------------------------------------------------------------
    async def run_schedule(self, every: float = SCHEDULE_TICK) -> None:
        """Start the plan's scheduled drills when their time comes (checked every
        ``every`` seconds; a time missed while the gateway was down is not made up)."""
        last = self.wall()
        while True:
            await asyncio.sleep(every)
            now = self.wall()
            if self.leading():
                self.start_due(last, now)
            last = now

    def start_due(self, since: float, now: float) -> list[Drill]:
        """Start each scheduled drill whose time fell in ``(since, now]``."""
        if self.context is None:
            return []
        started = []
        for entry in self.context.plan().drills.schedule:
            due = croniter(entry.cron, now).get_prev(float)
            if not since < due <= now:
                continue
            try:
                started.append(
                    self.start(
                        entry.target, entry.fault, entry.duration, entry.share, scheduled=True
                    )
                )
            except InvalidRequest as error:  # one already running on the target, …
                log.warning("scheduled drill on %s not started: %s", entry.target, error.message)
        return started

    async def _settle(self, drill: Drill) -> None:
        """Wait (bounded) until the incidents the drill caused are resolved."""
        assert self.context is not None
        deadline = self.clock() + self.context.plan().drills.settle
        while self.clock() < deadline:
            still = {i.id for i in self.context.open_incidents()} & set(drill.incidents)
            if not still:
                return
            await asyncio.sleep(SETTLE_POLL)

    async def _report(self, drill: Drill) -> Report | None:
        context = self.context
        if context is None or context.engine is None:
            drill.error = "no journal: a drill without one has no report"
            return None
        if context.flush is not None:
            await context.flush()
        plan = context.plan()
        # "added latency": against the same span just before the drill
        before = [(drill.started_at - drill.duration, drill.started_at)]
        if drill.incidents:
            return await incident_report(
                context.engine, plan, drill.incidents[0], wall=self.wall, baseline=before
            )
        return await window_report(
            context.engine,
            plan,
            drill.started_at,
            max(self.wall(), drill.ends_at),
            wall=self.wall,
            baseline=before,
            routes=_routes_of(plan, drill.target),
            title=f"Drill {drill.id}: {drill.fault} on {drill.target}",
        )

    async def aclose(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()


def _routes_of(plan: Plan, target: str) -> frozenset[str]:
    """The routes that use ``target`` ("provider/model", or a whole "provider")."""

    def uses(key: str) -> bool:
        return key == target or ("/" not in target and key.partition("/")[0] == target)

    return frozenset(r for r, keys in route_targets(plan).items() if any(map(uses, keys)))
