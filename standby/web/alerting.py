"""The noticing-and-telling side of one Standby process, wired: signals, probes,
incidents, the providers' official pages and notifications.

``Alerting`` lives as long as the process (like the journal): the signals and open
incidents survive a plan reload; what depends on the plan's providers (the probes, the
status-page watchers) is rebuilt for each new ``Gateway`` by ``use(gateway)``.

    gate ──observer──▶ Signals ◀── Prober (probes, through their own gate)
                          │
                 IncidentManager.evaluate (every second) ──▶ IncidentStore (journal DB)
                          │                     ▲
                          ▼                     │ official incidents, demotion
                      listener ──▶ notify      OfficialWatcher (per provider)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from standby.incidents.manager import IncidentManager, route_targets
from standby.journal.incident_store import IncidentEvent, IncidentRow, IncidentStore
from standby.metrics import Metrics
from standby.notify.channels import build_all
from standby.notify.delivery import Delivery
from standby.notify.dispatcher import Dispatcher
from standby.notify.message import Notice, NoticeEvent
from standby.plan.alerts import Notify, Step
from standby.plan.model import Plan
from standby.statuspage.app import status_app
from standby.statuspage.model import PageView
from standby.statuspage.source import PageSource
from standby.statuspage.subscribe import routes as subscribe_routes
from standby.statuspage.subscriptions import DELIVERY_INTERVAL, SubscriptionService
from standby.watch.official import Level, OfficialWatcher, Reading, StatusPageSpec, resolve
from standby.watch.probes import Prober, probe_targets
from standby.watch.signals import Signals

if TYPE_CHECKING:
    from standby.web.app import Gateway

log = logging.getLogger("standby.incidents")

Listener = Callable[[str, IncidentRow], None]


class Alerting:
    def __init__(
        self,
        plan: Plan,
        *,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self.wall = wall
        self.rng = rng or random.Random()
        self.signals = Signals(slow=plan.incidents.detect.slow_window)
        self.store: IncidentStore | None = None
        self.subscriptions: SubscriptionService | None = None
        self.listeners: list[Listener] = []
        self.manager = IncidentManager(
            plan, self.signals, None, listener=self._heard, monotonic=clock, wall=wall
        )
        self.prober: Prober | None = None
        self.gateway: Gateway | None = None
        self.watchers: dict[str, OfficialWatcher] = {}
        self.official: dict[str, Reading] = {}  # provider → its page's last reading
        self._demoted: dict[str, float] = {}  # target key → until when we hold it
        self.dispatcher = self._dispatcher(plan.notify)
        # a drill's incidents on channels of their own, when the plan names some
        self.drill_dispatcher = (
            self._dispatcher(
                Notify(
                    channels=plan.notify.channels,
                    escalation=[Step(after=0.0, notify=list(plan.drills.channels))],
                )
            )
            if plan.drills.channels
            else None
        )
        self.listeners.append(self._tell)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False
        self.page = PageSource(
            self._plan,
            self.manager.open_incidents,
            route_targets=route_targets,
            clock=clock,
            wall=wall,
        )

    # -- wiring ---------------------------------------------------------------------------------
    def attach_store(self, store: IncidentStore) -> None:
        """Keep incidents in the journal's database from now on."""
        self.store = store
        self.manager.store = store
        self.page.attach(store.engine)

    def attach_subscriptions(self, service: SubscriptionService) -> None:
        """Let visitors of the page subscribe, and tell them (before ``use()``: the
        admin app mounts the routes when it is built)."""
        self.subscriptions = service

    def _plan(self) -> Plan:
        assert self.gateway is not None, "use(gateway) first"
        return self.gateway.plan

    def use(self, gateway: Gateway) -> None:
        """Serve ``gateway``'s plan: thresholds, routes, probes of its providers."""
        plan = gateway.plan
        self.gateway = gateway
        self.manager.reload(plan)
        targets = probe_targets(
            route_targets(plan),
            gateway.providers,
            lambda name: plan.providers[name].probe,
        )
        self.prober = Prober(
            plan.probes,
            targets,
            gateway.providers,
            gateway.gate,  # probes are admitted as such; the gate tells the signals so
            self.signals,
            clock=self.clock,
            rng=self.rng,
            timeouts={
                name: config.timeouts.apply(plan.timeouts)
                for name, config in plan.providers.items()
            },
        )
        self.prober.leading = self.manager.leading
        if self._running:
            self._start("probes", self.prober.run())
        self._watch_pages(plan)
        # the notification channels and escalation keep the plan they started with: a new
        # dispatcher would not know the open incidents' threads (StandbyApp.reload says so)

    # -- the providers' own pages ------------------------------------------------------------
    def _watch_pages(self, plan: Plan) -> None:
        specs: dict[str, StatusPageSpec] = {}
        for name, config in plan.providers.items():
            spec = resolve(config.kind, config.base_url, config.status_page)
            if spec is not None:
                specs[name] = spec
        for name in list(self.watchers):
            if name not in specs or self.watchers[name].spec != specs[name]:
                self._start(f"stop page {name}", self.watchers.pop(name).stop())
                self.official.pop(name, None)
        for name, spec in specs.items():
            if name not in self.watchers:
                self.watchers[name] = OfficialWatcher(
                    name, spec, self._reading, clock=self.clock, wall=self.wall, rng=self.rng
                )
                if self._running:
                    self.watchers[name].start()

    async def _reading(self, provider: str, reading: Reading) -> None:
        """A provider's page was read: demote its targets during a declared outage or
        maintenance, and tell the incidents what the provider says."""
        self.official[provider] = reading
        gateway = self.gateway
        watcher = self.watchers.get(provider)
        if gateway is None or watcher is None or provider not in gateway.plan.providers:
            return
        worst = reading.worst(watcher.spec.components)
        declared = worst in (Level.MAJOR_OUTAGE, Level.MAINTENANCE)
        now = self.clock()
        keys = [
            key
            for keys in route_targets(gateway.plan).values()
            for key in keys
            if key.partition("/")[0] == provider
        ]
        if declared and gateway.plan.providers[provider].status_page.demote:
            until = now + watcher.spec.interval * 2.0  # renewed by each reading that says so
            for key in keys:
                if key not in self._demoted:
                    log.warning("%s demoted: its provider's page says %s", key, worst.value)
                gateway.registry.hold_until(key, until)
                self._demoted[key] = until
        else:
            for key in keys:
                held = self._demoted.pop(key, None)
                health = gateway.registry.get(key)
                if held is not None and health.held_until is not None and health.held_until <= held:
                    health.held_until = None  # our hold, not a provider's Retry-After
                    log.warning("%s restored: its provider's page says %s", key, worst.value)
        incidents = [
            {
                "name": incident.name,
                "status": incident.status,
                "impact": incident.impact.value,
                "started_at": incident.started_at,
                "url": incident.url,
                "eta": incident.eta,
                "updates": [
                    {"at": u.at, "status": u.status, "body": u.body} for u in incident.updates[:5]
                ],
            }
            for incident in reading.incidents
        ]
        if not self.manager.leading():  # one replica opens incidents (cluster.lease)
            return
        for key in keys:  # the provider says so before any request fails: an incident
            component = f"target:{key}"
            existing = self.manager.open_for(component)
            if worst is Level.MAJOR_OUTAGE and existing is None:
                name = incidents[0]["name"] if incidents else "a major outage"
                await self.manager.open(
                    component,
                    f"{key}: {provider} declares {name}",
                    message=f"{provider}'s status page declares a major outage",
                    source="official",
                )
            elif (
                existing is not None
                and existing.source == "official"
                and worst in (Level.OPERATIONAL, Level.DEGRADED)
            ):
                await self.manager.resolve(
                    existing.id, f"{provider}'s status page says {worst.value} again"
                )
        await self.manager.official(provider, incidents, worst.value)

    def _dispatcher(self, config: Notify) -> Dispatcher:
        return Dispatcher(config, build_all(config), self.wall, self._delivered)

    def _tell(self, event: str, incident: IncidentRow) -> None:
        """An incident changed: the dispatcher decides who hears of it, and when."""
        if event not in _EVENTS:
            return
        last = incident.events[-1] if incident.events else None
        notice = Notice(
            incident_id=incident.id,
            event=cast(NoticeEvent, event),
            title=incident.title,
            body=last.message if last is not None else incident.title,
            severity="info"
            if event == "resolved"
            else ("error" if incident.severity == "major" else "warning"),
            component=incident.component,
            status=incident.status,
            at=last.at if last is not None else incident.updated_at,
        )
        dispatcher = self.dispatcher
        if incident.source == "drill" and self.drill_dispatcher is not None:
            dispatcher = self.drill_dispatcher  # a rehearsal: only the drill channels hear it
        dispatcher.notify(notice.event, notice)

    def _delivered(self, incident_id: str, notice: Notice, delivery: Delivery) -> None:
        """Every delivery attempt's outcome goes on the incident's timeline."""
        kind = "notified" if delivery.ok else "notify_failed"
        what = f"{notice.event} sent to {delivery.channel}"
        if not delivery.ok:
            what = f"{notice.event} not delivered to {delivery.channel}: {delivery.error}"
        data = {
            "channel": delivery.channel,
            "event": notice.event,
            "ok": delivery.ok,
            "attempts": delivery.attempts,
            "status": delivery.status,
        }
        self.manager.note_delivery(incident_id, IncidentEvent(delivery.at, kind, what, data))

    def _heard(self, event: str, incident: IncidentRow) -> None:
        for listener in self.listeners:
            try:
                listener(event, incident)
            except Exception:  # a listener's bug must not stop the incident's record
                log.exception("incident listener failed on %s %s", event, incident.id)

    # -- running -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._running = True
        self.dispatcher.start()
        if self.drill_dispatcher is not None:
            self.drill_dispatcher.start()
        for watcher in self.watchers.values():
            watcher.start()
        self._start("incidents", self.manager.run())
        if self.prober is not None:
            self._start("probes", self.prober.run())
        if self.subscriptions is not None:
            self._start(
                "subscriptions",
                self.subscriptions.run(self.page_now, DELIVERY_INTERVAL, self.manager.leading),
            )

    def _start(self, name: str, job: Coroutine[Any, Any, None]) -> None:
        old = self._tasks.pop(name, None)
        if old is not None:
            old.cancel()
        task = asyncio.create_task(job, name=name)
        task.add_done_callback(_log_end)
        self._tasks[name] = task

    async def stop(self) -> None:
        self._running = False
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for watcher in self.watchers.values():
            await watcher.stop()
        await self.dispatcher.stop()
        if self.drill_dispatcher is not None:
            await self.drill_dispatcher.stop()
        await self.page.aclose()
        if self.subscriptions is not None:
            await self.subscriptions.aclose()

    # -- the public page ---------------------------------------------------------------------

    async def page_view(self, language: str | None = None) -> PageView:
        """The public status page as it is now (``statuspage.source`` caches it)."""
        return await self.page.view(language)

    async def page_now(self) -> PageView:
        """The page in its own language (what subscribers are told from)."""
        return await self.page.view(None)

    def public_routes(self) -> list[BaseRoute]:
        """The page's routes beyond reading it (subscriptions), when the plan has any."""
        return [] if self.subscriptions is None else list(subscribe_routes(self.subscriptions))

    def status_app(self) -> Starlette:
        """The public page alone, for ``status_page.listen``."""
        return status_app(self.page_view, self.public_routes())

    # -- the live view -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What ``GET /standby/status`` answers."""
        now = self.clock()
        gateway = self.gateway
        detect = self.manager.detector.config
        components = self.manager.components()
        targets: dict[str, Any] = {}
        for key in self.manager.targets():
            fast = self.signals.stats(key, detect.fast_window, now)
            slow = self.signals.stats(key, detect.slow_window, now)
            breaker = (
                gateway.registry.get(key).breaker.state(now) if gateway is not None else "unknown"
            )
            targets[key] = {
                "breaker": breaker,
                "fast": fast.as_dict(),
                "slow": slow.as_dict(),
                **components.get(f"target:{key}", {"judgement": "unknown"}),
            }
        routes = {
            name: components.get(f"route:{name}", {"judgement": "unknown"})
            for name in (gateway.plan.routes if gateway is not None else {})
        }
        return {
            "at": self.wall(),
            "targets": targets,
            "routes": routes,
            "official": {
                provider: {
                    "indicator": reading.worst(self.watchers[provider].spec.components).value
                    if provider in self.watchers
                    else reading.indicator.value,
                    "page": reading.source_url,
                    "components": {name: level.value for name, level in reading.components.items()},
                    "incidents": [
                        {
                            "name": i.name,
                            "status": i.status,
                            "impact": i.impact.value,
                            "started_at": i.started_at,
                            "url": i.url,
                            "eta": i.eta,
                        }
                        for i in reading.incidents
                    ],
                    "error": reading.error,
                    "fetched_at": reading.fetched_at,
                }
                for provider, reading in self.official.items()
            },
            "demoted": sorted(self._demoted),
            "incidents": [i.as_dict(events=False) for i in self.manager.open_incidents()],
            "probes_sent": self.prober.sent if self.prober is not None else 0,
        }


_EVENTS = frozenset({"opened", "updated", "acknowledged", "resolved"})  # what is told


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r", task.get_name(), task.exception())
