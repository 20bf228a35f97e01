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
from typing import TYPE_CHECKING, Any

from standby.health.gate import RegistryGate
from standby.incidents.manager import IncidentManager, route_targets
from standby.journal.incident_store import IncidentRow, IncidentStore
from standby.metrics import Metrics
from standby.plan.model import Plan
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
        self.listeners: list[Listener] = []
        self.manager = IncidentManager(
            plan, self.signals, None, listener=self._heard, monotonic=clock, wall=wall
        )
        self.prober: Prober | None = None
        self.gateway: Gateway | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False

    # -- wiring ---------------------------------------------------------------------------------
    def attach_store(self, store: IncidentStore) -> None:
        """Keep incidents in the journal's database from now on."""
        self.store = store
        self.manager.store = store

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
            # the probes' own gate: the same breakers, but they report to the signals
            # themselves, as probes
            RegistryGate(gateway.registry, self.metrics),
            self.signals,
            clock=self.clock,
            rng=self.rng,
            connect_timeout=plan.timeouts.connect,
        )
        if self._running:
            self._start("probes", self.prober.run())

    def _heard(self, event: str, incident: IncidentRow) -> None:
        for listener in self.listeners:
            try:
                listener(event, incident)
            except Exception:  # a listener's bug must not stop the incident's record
                log.exception("incident listener failed on %s %s", event, incident.id)

    # -- running -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._running = True
        self._start("incidents", self.manager.run())
        if self.prober is not None:
            self._start("probes", self.prober.run())

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
            "incidents": [i.as_dict(events=False) for i in self.manager.open_incidents()],
            "probes_sent": self.prober.sent if self.prober is not None else 0,
        }


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r", task.get_name(), task.exception())
