"""Standby's incidents: the detector's transitions, people's actions and the providers'
own declarations, kept in one place, stored, and told to whoever listens.

``IncidentManager.evaluate(now)`` (every ``detect.evaluate_every`` seconds, from
``run()``) judges every target of the plan — and every target the signals have seen —
and every route, feeds the detector, and turns its transitions into incidents:

* **opened**: a new incident (``investigating``) with a timeline that starts at the
  component's first failure in this streak, then the detection, and, for a target whose
  route has other targets, the failover ("traffic is served by the route's other
  targets");
* **monitoring** / **relapsed**: the status moves to ``monitoring`` and back;
* **resolved**: ``resolved``, with the time.

People act through ``open``, ``update``, ``acknowledge`` and ``resolve`` (the admin API
and the CLI); a provider's official page (``official``) adds its incident to the
timeline of Standby's incidents about that provider and marks them ``identified``.  A
maintenance window of the plan mutes what it covers: the incident is recorded, nobody
is notified.  Each change is stored (``IncidentStore``) and passed to ``listener``
(the notification dispatcher) as ``(event, incident)``.

Two clocks are injected: ``monotonic`` (the one signals are stamped with) and ``wall``
(unix seconds, what incidents show).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from standby.incidents.detector import (
    Change,
    Detector,
    Judgement,
    Severity,
    Transition,
    Verdict,
    judge,
    judge_route,
)
from standby.journal.incident_store import IncidentEvent, IncidentRow
from standby.plan.model import Plan
from standby.watch.signals import Signals

log = logging.getLogger("standby.incidents")

Listener = Callable[[str, IncidentRow], None]  # (event, incident): opened, updated, …


class Store(Protocol):
    """Where incidents are kept (``journal.incident_store.IncidentStore``)."""

    async def create(self, incident: IncidentRow) -> None: ...
    async def update(self, incident_id: str, at: float, **values: Any) -> None: ...
    async def add_event(self, incident_id: str, event: IncidentEvent) -> None: ...
    async def get(self, incident_id: str) -> IncidentRow | None: ...
    async def open_ones(self) -> list[IncidentRow]: ...


class NotFound(LookupError):
    """No incident has that id."""


def new_incident_id(now: float) -> str:
    return f"inc_{int(now):x}{secrets.token_hex(3)}"


def route_targets(plan: Plan) -> dict[str, list[str]]:
    """Route name → its targets' keys (``provider/model``), in the plan's order."""
    found: dict[str, list[str]] = {}
    for name, route in plan.routes.items():
        tiers = route.tiers if route.tiers is not None else [[t] for t in route.targets or []]
        keys: list[str] = []
        for tier in tiers:
            for item in tier:
                key = item if isinstance(item, str) else item.target
                if "{" not in key and key not in keys:  # a {model} target is no one key
                    keys.append(key)
        found[name] = keys
    return found


class IncidentManager:
    def __init__(
        self,
        plan: Plan,
        signals: Signals,
        store: Store | None,
        *,
        listener: Listener | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.signals = signals
        self.store = store
        self.listener = listener
        self.monotonic = monotonic
        self.wall = wall
        self._plan = plan
        self.detector = Detector(plan.incidents.detect)
        self._routes = route_targets(plan)
        self._open: dict[str, IncidentRow] = {}  # incident id → incident, while open
        self._by_component: dict[str, str] = {}  # component → its open incident's id
        self._verdicts: dict[str, Verdict] = {}  # component → its last judgement
        self._lock = asyncio.Lock()
        # component → the drill its trouble comes from (``drills.runner``), if any
        self.drilling: Callable[[str], str | None] = lambda component: None
        # whether this replica runs detection now (``cluster.lease``: one replica does)
        self.leading: Callable[[], bool] = lambda: True

    # -- plan and restart --------------------------------------------------------------------
    def reload(self, plan: Plan) -> None:
        """A new plan: new thresholds and routes; open incidents carry on."""
        self._plan = plan
        self._routes = route_targets(plan)
        self.detector.config = plan.incidents.detect

    async def recover(self) -> None:
        """Pick up the incidents a previous run left open (they resolve like new ones)."""
        if self.store is None:
            return
        for incident in await self.store.open_ones():
            self._remember(incident)
            if incident.source in ("detector", "drill"):
                # the detector resumes them as open: they need good evidence to resolve
                bad = Verdict(Judgement.BAD, Severity(incident.severity), "open at start-up")
                for _ in range(self.detector.config.open_after):
                    self.detector.observe(incident.component, bad, self.monotonic())

    # -- reading -----------------------------------------------------------------------------
    def open_incidents(self) -> list[IncidentRow]:
        return sorted(self._open.values(), key=lambda i: i.opened_at)

    def open_for(self, component: str) -> IncidentRow | None:
        """The open incident of ``component``, if there is one."""
        incident_id = self._by_component.get(component)
        return None if incident_id is None else self._open[incident_id]

    def components(self) -> dict[str, dict[str, Any]]:
        """Each component's last judgement and open incident (for ``/standby/status``)."""
        return {
            component: {
                "judgement": verdict.judgement.value,
                "severity": verdict.severity.value,
                "reason": verdict.reason,
                "incident": self._by_component.get(component),
            }
            for component, verdict in sorted(self._verdicts.items())
        }

    def targets(self) -> list[str]:
        keys = [key for keys in self._routes.values() for key in keys]
        keys.extend(self.signals.keys())
        return list(dict.fromkeys(keys))

    # -- the detector's side -----------------------------------------------------------------
    async def evaluate(self, now: float | None = None) -> list[Transition]:
        """Judge every component once; apply the detector's transitions."""
        now = self.monotonic() if now is None else now
        config = self._plan.incidents.detect
        verdicts: dict[str, Verdict] = {}
        for key in self.targets():
            verdicts[f"target:{key}"] = judge(
                self.signals.stats(key, config.fast_window, now),
                self.signals.stats(key, config.slow_window, now),
                self.signals.probe_failures(key),
                config,
            )
        for route, keys in self._routes.items():
            if len(keys) > 1:  # a one-target route's incident is its target's
                verdicts[f"route:{route}"] = judge_route(
                    [verdicts[f"target:{key}"] for key in keys]
                )
        self._verdicts = verdicts
        transitions = []
        for component, verdict in verdicts.items():
            transition = self.detector.observe(component, verdict, now)
            if transition is not None:
                transitions.append(transition)
        async with self._lock:
            for transition in transitions:
                await self._apply(transition, now)
        return transitions

    def _to_wall(self, monotonic_at: float, now: float) -> float:
        return self.wall() - (now - monotonic_at)

    async def _apply(self, transition: Transition, now: float) -> None:
        component, verdict = transition.component, transition.verdict
        at = self._to_wall(transition.at, now)
        if transition.change is Change.OPENED:
            if component in self._by_component:  # opened by hand already: the detector joins
                return
            events = []
            first_failure = self._first_failure(component, now)
            if first_failure is not None:
                events.append(IncidentEvent(first_failure, "first_failure", "first failure seen"))
            events.append(IncidentEvent(at, "opened", f"detected: {verdict.reason}"))
            alternatives = self._alternatives(component)
            if alternatives:
                events.append(
                    IncidentEvent(
                        at,
                        "failover",
                        "traffic is served by " + ", ".join(alternatives),
                        {"targets": alternatives},
                    )
                )
            muted = self._muted(component, at)
            if muted:
                events.append(IncidentEvent(at, "muted", f"scheduled maintenance: {muted}"))
            title, source = self._title(component, verdict), "detector"
            drill = self.drilling(component)
            if drill is not None:  # a rehearsal: said in its title, kept off the public page
                title, source = f"[DRILL] {title}", "drill"
                events.append(
                    IncidentEvent(at, "drill", f"caused by drill {drill}", {"drill": drill})
                )
            incident = IncidentRow(
                id=new_incident_id(at),
                component=component,
                title=title,
                status="investigating",
                severity=verdict.severity.value,
                source=source,
                opened_at=at,
                updated_at=at,
                first_failure_at=first_failure,
                muted=bool(muted),
                events=tuple(events),
            )
            log.warning("incident %s opened: %s", incident.id, incident.title)
            await self._create(incident)
            return
        incident_id = self._by_component.get(component)
        if incident_id is None:
            return
        if transition.change is Change.MONITORING:
            await self._set_status(
                incident_id, "monitoring", at, "monitoring", "signals look healthy again"
            )
        elif transition.change is Change.RELAPSED:
            await self._set_status(
                incident_id, "investigating", at, "relapsed", f"failing again: {verdict.reason}"
            )
        elif transition.change is Change.RESOLVED:
            await self._resolve(incident_id, at, "recovered: healthy for long enough")

    def _first_failure(self, component: str, now: float) -> float | None:
        """When the failures of this streak began: the first failure since one fast window
        before the streak's first bad judgement."""
        first_bad = self.detector.first_bad_at(component)
        if not component.startswith("target:") or first_bad is None:
            return None
        since = first_bad - self._plan.incidents.detect.fast_window
        found = self.signals.first_failure(component.removeprefix("target:"), since, now)
        return None if found is None else self._to_wall(found, now)

    def _alternatives(self, component: str) -> list[str]:
        if not component.startswith("target:"):
            return []
        key = component.removeprefix("target:")
        found: list[str] = []
        for keys in self._routes.values():
            if key in keys:
                found.extend(k for k in keys if k != key and k not in found)
        return found

    def _muted(self, component: str, at: float) -> str:
        """The note of the maintenance window covering ``component`` at ``at``, or ''."""
        moment = datetime.fromtimestamp(at, UTC)
        provider = component.removeprefix("target:").partition("/")[0]
        for window in self._plan.incidents.maintenance:
            covers = not window.providers or (
                component.startswith("target:") and provider in window.providers
            )
            if covers and window.start <= moment < window.end:
                return window.note or "maintenance window"
        return ""

    @staticmethod
    def _title(component: str, verdict: Verdict) -> str:
        kind, _, name = component.partition(":")
        what = "failing" if verdict.severity is Severity.MAJOR else "degraded"
        return f"{name} is {what}" if kind in ("target", "route") else component

    # -- people's side -----------------------------------------------------------------------
    async def open(
        self,
        component: str,
        title: str,
        *,
        severity: str = "major",
        message: str = "",
        source: str = "manual",
    ) -> IncidentRow:
        """An incident opened by hand (``standby incidents open``), or because a
        provider's page declares an outage (``source="official"``)."""
        async with self._lock:
            at = self.wall()
            existing = self._by_component.get(component)
            if existing is not None:
                return self._open[existing]
            incident = IncidentRow(
                id=new_incident_id(at),
                component=component,
                title=title,
                status="investigating",
                severity=severity,
                source=source,
                opened_at=at,
                updated_at=at,
                muted=bool(self._muted(component, at)),
                events=(IncidentEvent(at, "opened", message or f"opened by hand: {title}"),),
            )
            await self._create(incident)
            return incident

    async def update(self, incident_id: str, message: str, *, status: str | None = None) -> None:
        async with self._lock:
            incident = await self._known(incident_id)
            at = self.wall()
            if status is not None and status != incident.status:
                if status == "resolved":
                    await self._resolve(incident_id, at, message or "resolved by hand")
                    return
                await self._set_status(incident_id, status, at, "update", message)
                return
            await self._event(incident_id, IncidentEvent(at, "update", message))
            self._notify("updated", incident_id)

    async def acknowledge(self, incident_id: str, who: str = "") -> None:
        async with self._lock:
            incident = await self._known(incident_id)
            if incident.acknowledged_at is not None:
                return
            at = self.wall()
            self._replace(incident_id, acknowledged_at=at, updated_at=at)
            if self.store is not None:
                await self.store.update(incident_id, at, acknowledged_at=at)
            text = f"acknowledged by {who}" if who else "acknowledged"
            await self._event(incident_id, IncidentEvent(at, "acknowledged", text))
            self._notify("acknowledged", incident_id)

    async def resolve(self, incident_id: str, message: str = "") -> None:
        async with self._lock:
            incident = await self._known(incident_id)
            if incident.status == "resolved":
                return
            self.detector.close(incident.component)
            await self._resolve(incident_id, self.wall(), message or "resolved by hand")

    async def _known(self, incident_id: str) -> IncidentRow:
        incident = self._open.get(incident_id)
        if incident is None and self.store is not None:
            incident = await self.store.get(incident_id)
        if incident is None:
            raise NotFound(incident_id)
        return incident

    # -- the provider's side -----------------------------------------------------------------
    async def official(
        self, provider: str, incidents: Iterable[Mapping[str, Any]], worst: str
    ) -> None:
        """The provider's page declares ``incidents`` (name, status, impact, started_at,
        url, eta, updates): attach them to Standby's open incidents about ``provider``."""
        declared = list(incidents)
        if not declared:
            return
        async with self._lock:
            at = self.wall()
            for incident in list(self._open.values()):
                target = incident.component.removeprefix("target:")
                if not incident.component.startswith("target:") or (
                    target.partition("/")[0] != provider
                ):
                    continue
                summary = {"provider": provider, "indicator": worst, "incidents": declared}
                if incident.official == summary:
                    continue
                first = declared[0]
                text = f"{provider}'s status page: {first.get('name')} ({first.get('status')})"
                self._replace(incident.id, official=summary)
                if self.store is not None:
                    await self.store.update(incident.id, at, official=summary)
                await self._event(incident.id, IncidentEvent(at, "official", text, summary))
                if incident.status == "investigating":
                    await self._set_status(
                        incident.id, "identified", at, "update", "the provider acknowledged it"
                    )

    # -- shared ------------------------------------------------------------------------------
    def _remember(self, incident: IncidentRow) -> None:
        self._open[incident.id] = incident
        self._by_component[incident.component] = incident.id

    def _replace(self, incident_id: str, **values: Any) -> IncidentRow:
        incident = replace(self._open[incident_id], **values)
        self._open[incident_id] = incident
        return incident

    async def _create(self, incident: IncidentRow) -> None:
        self._remember(incident)
        if self.store is not None:
            await self.store.create(incident)
        self._notify("opened", incident.id)

    async def _event(self, incident_id: str, event: IncidentEvent) -> None:
        if incident_id in self._open:
            incident = self._open[incident_id]
            self._replace(incident_id, events=(*incident.events, event), updated_at=event.at)
        if self.store is not None:
            await self.store.add_event(incident_id, event)

    async def _set_status(
        self, incident_id: str, status: str, at: float, kind: str, message: str
    ) -> None:
        if incident_id in self._open:
            self._replace(incident_id, status=status)
        if self.store is not None:
            await self.store.update(incident_id, at, status=status)
        await self._event(incident_id, IncidentEvent(at, kind, message, {"status": status}))
        self._notify("updated", incident_id)

    async def publish(self, incident_id: str, who: str = "") -> None:
        """Put the incident on the public status page now (a person's decision, when
        the plan's escalation does not publish by itself)."""
        async with self._lock:
            incident = await self._known(incident_id)
            if any(event.kind == "published" for event in incident.events):
                return
            at = self.wall()
            await self._event(incident_id, IncidentEvent(at, "published", who or "by hand"))

    async def _resolve(self, incident_id: str, at: float, message: str) -> None:
        if self.store is not None:
            await self.store.update(incident_id, at, status="resolved", resolved_at=at)
        await self._event(incident_id, IncidentEvent(at, "resolved", message))
        incident = self._open.pop(incident_id, None)
        if incident is not None:
            self._by_component.pop(incident.component, None)
            resolved = replace(incident, status="resolved", resolved_at=at, updated_at=at)
            log.warning("incident %s resolved: %s", incident_id, incident.title)
            if self.listener is not None and not resolved.muted:
                self.listener("resolved", resolved)

    def _notify(self, event: str, incident_id: str) -> None:
        incident = self._open.get(incident_id)
        if self.listener is not None and incident is not None and not incident.muted:
            self.listener(event, incident)

    def note_delivery(self, incident_id: str, event: IncidentEvent) -> None:
        """A notification about ``incident_id`` was delivered (or not): on its timeline."""
        task = asyncio.get_running_loop().create_task(self._event(incident_id, event))
        task.add_done_callback(_log_failure)

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Evaluate every ``detect.evaluate_every`` seconds until cancelled, while this
        replica leads; each time it starts leading, it first takes over the open incidents
        (a previous run's, or the previous leader's)."""
        leading = False
        while True:
            now_leading = self.leading()
            if now_leading and not leading:
                try:
                    await self.recover()
                except Exception as exc:  # the database is away: detection goes on
                    log.error("could not read the open incidents of a previous run: %s", exc)
            leading = now_leading
            if leading:
                try:
                    await self.evaluate()
                except Exception:  # a database hiccup must not stop detection
                    log.exception("incident evaluation failed")
            await asyncio.sleep(self._plan.incidents.detect.evaluate_every)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not record a notification on its incident: %s", task.exception())
