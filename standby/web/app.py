"""The composition root: a plan in, one ASGI application out.

Everything is built here from the plan and passed down explicitly: providers, the health
registry and its gate, metrics, the router, the wire handlers.  Nothing is built at import
time and nothing lives in a module global, so tests can run several apps side by side.

Two lifetimes.  A ``Gateway`` is what one plan builds and requests flow through: the
providers and their connection pools, breakers, the router, the wires.  ``StandbyApp``
lives as long as the process: the journal, its background jobs, the metrics.  Reloading
the plan (SIGHUP) builds a new ``Gateway`` and swaps it in; requests already in flight
finish on the one they started on, which is closed once the last of them is done.

Requests on the OpenAI wire are dispatched by a dict lookup straight to raw-ASGI handlers
(the hot path); everything else goes to a small Starlette app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from standby import __version__, cancellation
from standby.capacity.clients import ClientLimits
from standby.capacity.guard import CapacityGuard
from standby.capacity.ledger import Ledger, LocalLedger, RedisLedger
from standby.cluster.health import SharedHealth
from standby.cluster.lease import Lease
from standby.deferred.runner import DeferredRunner
from standby.drills.faults import Faulty
from standby.drills.runner import Context as DrillContext
from standby.drills.runner import DrillRunner
from standby.health.gate import RegistryGate
from standby.health.registry import HealthRegistry
from standby.journal.drill_store import DrillStore
from standby.journal.incident_store import IncidentStore
from standby.journal.service import JournalService
from standby.journal.subscription_store import SubscriptionStore
from standby.metrics import Metrics
from standby.ops.retention import RetentionJob
from standby.plan.model import Plan
from standby.providers.base import Provider
from standby.providers.registry import build_provider
from standby.routing.router import Router
from standby.statuspage.subscriptions import (
    SubscriptionConfig,
    SubscriptionService,
    subscription_key,
)
from standby.web.admin_api import admin_app
from standby.web.alerting import Alerting
from standby.web.anthropic_api import AnthropicWire
from standby.web.asgi import Receive, Scope, Send
from standby.web.chat_page import ChatPage
from standby.web.clients import ClientKeys
from standby.web.openai_api import OpenAIWire
from standby.web.pipeline import Pipeline
from standby.web.responses_api import ResponsesWire

log = logging.getLogger("standby")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class Gateway:
    """What one plan builds and every request flows through."""

    def __init__(
        self,
        plan: Plan,
        *,
        metrics: Metrics,
        journal: JournalService | None,
        clock: Callable[[], float],
        rng: random.Random | None,
        providers: dict[str, Provider] | None = None,
        registry: HealthRegistry | None = None,
        alerting: Alerting | None = None,
        drills: DrillRunner | None = None,
        shared: SharedHealth | None = None,
        cluster: Callable[[], dict[str, Any]] | None = None,
        ledger: Ledger | None = None,
        chat_page: Handler | None = None,
    ) -> None:
        """``ledger``: where limits are counted (the process's, or Redis for replicas);
        ``chat_page``: the chat page (``/chat``), when the plan has it."""
        self.plan = plan
        self.chat_page = chat_page
        self.registry = registry or HealthRegistry(plan.breaker, trial_timeout=plan.timeouts.total)
        built: dict[str, Provider] = (
            providers
            if providers is not None
            else {name: build_provider(name, config) for name, config in plan.providers.items()}
        )
        # every provider as a drill may fault it (``drills.faults``: no drill, no fault)
        self.providers: dict[str, Provider] = (
            built
            if drills is None
            else {name: Faulty(p, drills.injector) for name, p in built.items()}
        )
        self.gate = RegistryGate(
            self.registry,
            metrics,
            # on a replica of a cluster, the relay also tells the others each outcome
            observer=shared.relay if shared is not None else alerting.signals if alerting else None,
            on_transition=shared.transition if shared is not None else None,
        )
        ledger = ledger if ledger is not None else LocalLedger(clock)
        self.capacity = CapacityGuard(plan, ledger, clock=clock)
        self.limits = ClientLimits(plan.server.client_keys, ledger)
        self.router = Router(
            plan,
            self.providers,
            self.gate,
            metrics,
            clock=clock,
            rng=rng,
            capacity=self.capacity,
        )
        self.keys = ClientKeys(plan.server.client_keys, plan.server.admin_token)
        self.deferred = DeferredRunner(self.router, journal) if journal is not None else None
        self.in_flight = 0
        self.retired: asyncio.Event | None = None  # set once retired and drained
        wires = Pipeline(
            self.router,
            self.keys,
            journal.journal if journal else None,
            max_body=plan.server.max_body,
            store=plan.journal.store,
            on_disconnect=plan.server.on_disconnect,
            limits=self.limits,
            capacity=self.capacity,
        )
        chat = OpenAIWire(wires, deferrals=self.deferred)
        anthropic = AnthropicWire(wires)
        responses = ResponsesWire(wires, journal)
        self.hot: dict[tuple[str, str], Handler] = {}
        for prefix in ("/v1", ""):
            self.hot[("POST", f"{prefix}/responses")] = responses.responses
            self.hot[("POST", f"{prefix}/messages")] = anthropic.messages
            self.hot[("POST", f"{prefix}/chat/completions")] = chat.chat
            self.hot[("POST", f"{prefix}/embeddings")] = chat.embeddings
            self.hot[("GET", f"{prefix}/models")] = chat.models
        self.by_prefix: dict[tuple[str, str], Handler] = {
            ("GET", "/v1/models/"): chat.model,
            ("GET", "/models/"): chat.model,
            ("GET", "/v1/responses/"): responses.retrieve,
            ("GET", "/responses/"): responses.retrieve,
        }
        self.admin: Starlette = admin_app(
            self.router,
            self.registry,
            self.gate,
            metrics,
            admin_token=plan.server.admin_token,
            metrics_token=plan.server.metrics_token,
            clock=clock,
            journal=journal,
            keys=self.keys,
            alerting=alerting,
            drills=drills,
            cluster=cluster,
            state=(plan.state.url, plan.state.prefix) if plan.state.url else None,
            capacity=self.capacity.status,
        )

    def handler(self, method: str, path: str) -> Handler:
        handler = self.hot.get((method, path))
        if handler is not None:
            return handler
        for (verb, prefix), by_prefix in self.by_prefix.items():
            if method == verb and path.startswith(prefix) and len(path) > len(prefix):
                return by_prefix
        if self.chat_page is not None and (path == "/chat" or path.startswith("/chat/")):
            return self.chat_page
        return self.admin

    async def aclose(self) -> None:
        """Close the providers' connections (requests on this gateway are done)."""
        if self.deferred is not None:
            await self.deferred.stop()
        for provider in self.providers.values():
            await provider.aclose()


class StandbyApp:
    """The Standby gateway as an ASGI application."""

    def __init__(
        self,
        plan: Plan,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        providers: dict[str, Provider] | None = None,
        data_dir: Path | None = None,
        page_process: bool = False,
    ) -> None:
        """``page_process``: the public page is served by a process of its own
        (``web.page_process``), which then also tells its subscribers."""
        self.data_dir = data_dir
        self.started_server = plan.server  # what the server was started with (limits)
        self.clock = clock
        self.rng = rng
        self.metrics = Metrics()
        # no data directory (an embedded gateway): nothing is journaled
        self.journal_service = (
            JournalService(plan.journal, data_dir, objective=plan.status_page.objective)
            if data_dir is not None and plan.journal.enabled
            else None
        )
        service = self.journal_service
        self.retention = (
            RetentionJob(service.store, plan.journal.retain) if service is not None else None
        )
        self.alerting = Alerting(plan, metrics=self.metrics, clock=clock, rng=rng)
        self.drills = DrillRunner(clock=clock, rng=rng)
        # the replicas' shared breakers, when the plan names a Redis (state.url)
        self.shared = (
            SharedHealth(
                plan.state.url,
                prefix=plan.state.prefix,
                gate=lambda: self.gateway.gate,
                signals=self.alerting.signals,
                about={
                    "version": __version__,
                    "address": f"{plan.server.host}:{plan.server.port}",
                    "pid": os.getpid(),
                },
                report=self._report,
                clock=clock,
            )
            if plan.state.url
            else None
        )
        # one replica runs the singleton jobs (detection, probes, the incidents' side of
        # the providers' pages, subscribers' deliveries, scheduled drills)
        self.lease = (
            Lease(
                plan.state.url,
                prefix=plan.state.prefix,
                replica=self.shared.replica,
                ttl=plan.state.lease,
            )
            if self.shared is not None
            else None
        )
        if self.lease is not None:
            self.alerting.manager.leading = self.lease.leading
            self.drills.leading = self.lease.leading
        self._cluster: list[asyncio.Task[None]] = []
        # where the clients' and targets' limits are counted: in Redis for every replica
        # when they share one, else in this process (both outlive a plan reload)
        self.ledger: LocalLedger | RedisLedger = (
            RedisLedger(
                plan.state.url,
                prefix=f"{plan.state.prefix}:limits",
                roster=f"{plan.state.prefix}:replicas",
                clock=clock,
            )
            if plan.state.url
            else LocalLedger(clock)
        )
        self.alerting.manager.drilling = self.drills.drilling
        self.alerting.listeners.append(self.drills.heard)
        if service is not None:
            self.alerting.attach_store(IncidentStore(service.store.engine))
            page = plan.status_page
            if page.enabled and page.subscriptions.enabled and not page_process:
                self.alerting.attach_subscriptions(
                    SubscriptionService(
                        SubscriptionStore(service.store.engine),
                        SubscriptionConfig.from_plan(
                            plan, subscription_key(service.callback_secret)
                        ),
                        self.alerting.page_now,
                    )
                )
        # the chat page, when the plan has it (its answers outlive a plan reload)
        self.chat = (
            ChatPage(
                service,
                plan=lambda: self.gateway.plan,
                router=lambda: self.gateway.router,
                registry=lambda: self.gateway.registry,
                keys=lambda: self.gateway.keys,
                incidents=self.alerting.manager,
                clock=clock,
            )
            if service is not None and plan.chat.enabled
            else None
        )
        self.gateway = Gateway(
            plan,
            metrics=self.metrics,
            journal=service,
            clock=clock,
            rng=rng,
            providers=providers,
            alerting=self.alerting,
            drills=self.drills,
            shared=self.shared,
            cluster=self.cluster_status if self.shared is not None else None,
            ledger=self.ledger,
            chat_page=self.chat,
        )
        self.alerting.use(self.gateway)
        self.drills.attach(
            DrillContext(
                plan=lambda: self.gateway.plan,
                engine=service.store.engine if service is not None else None,
                flush=service.flush if service is not None else None,
                open_incidents=self.alerting.manager.open_incidents,
                store=DrillStore(service.store.engine) if service is not None else None,
            )
        )
        self._background: list[asyncio.Task[None]] = []
        self._retiring: set[asyncio.Task[None]] = set()

    def _report(self) -> dict[str, Any]:
        """What this replica's heartbeat says of it now: its journal's lag."""
        if self.journal_service is None:
            return {}
        status = self.journal_service.status()
        return {
            "journal": {
                k: status.get(k) for k in ("lag_s", "backlog_bytes", "state") if k in status
            }
        }

    def cluster_status(self) -> dict[str, Any]:
        """What ``/standby/health`` says of the cluster: shared breakers and the lease."""
        found = self.shared.status() if self.shared is not None else {}
        if self.lease is not None:
            found["lease"] = self.lease.status()
        return found

    # the current gateway's parts, for tests and tools
    @property
    def plan(self) -> Plan:
        return self.gateway.plan

    @property
    def router(self) -> Router:
        return self.gateway.router

    @property
    def registry(self) -> HealthRegistry:
        return self.gateway.registry

    @property
    def providers(self) -> dict[str, Provider]:
        return self.gateway.providers

    @property
    def deferred(self) -> DeferredRunner | None:
        return self.gateway.deferred

    @property
    def before_write(self) -> Callable[[], None] | None:
        """What the connections call before sending: the journal's ``flush`` of the
        events gathered in this pass of the loop (``standby.journal.journal``)."""
        return self.journal_service.journal.flush if self.journal_service is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            gateway = self.gateway
            gateway.in_flight += 1
            try:
                await gateway.handler(scope["method"], scope["path"])(scope, receive, send)
            finally:
                gateway.in_flight -= 1
                if gateway.retired is not None and gateway.in_flight == 0:
                    gateway.retired.set()
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    def reload(self, plan: Plan) -> list[str]:
        """Serve ``plan`` from now on; requests in flight finish on the old one.

        Returns what could not change without a restart (the journal, the address), to
        be logged.  Breaker states carry over when the breaker settings did not change.
        """
        old = self.gateway
        kept = []
        if plan.journal.model_copy(update={"store": old.plan.journal.store}) != old.plan.journal:
            kept.append("journal settings other than store (restart to change them)")
        if (plan.server.host, plan.server.port) != (old.plan.server.host, old.plan.server.port):
            kept.append("server.host and server.port (restart to change them)")
        if plan.notify != old.plan.notify:
            kept.append("notify channels and escalation (restart to change them)")
        same_health = plan.breaker == old.plan.breaker and plan.timeouts == old.plan.timeouts
        self.gateway = Gateway(
            plan,
            metrics=self.metrics,
            journal=self.journal_service,
            clock=self.clock,
            rng=self.rng,
            registry=old.registry if same_health else None,
            alerting=self.alerting,
            drills=self.drills,
            shared=self.shared,
            cluster=self.cluster_status if self.shared is not None else None,
            ledger=self.ledger,
            chat_page=self.chat,
        )
        self.alerting.use(self.gateway)
        if self._background and self.gateway.deferred is not None:
            self._start_job("deferred", self.gateway.deferred.run())
        task = asyncio.get_running_loop().create_task(self._retire(old), name="retire")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return kept

    async def _retire(self, gateway: Gateway) -> None:
        """Close ``gateway`` once its last request is done (bounded by its total budget)."""
        gateway.retired = asyncio.Event()
        if gateway.deferred is not None:
            await gateway.deferred.stop()
        if gateway.in_flight:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(gateway.plan.timeouts.total + 5.0):
                    await gateway.retired.wait()
        await gateway.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._start_background()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start_background(self) -> None:
        if self.shared is not None:
            self._cluster.append(asyncio.create_task(self.shared.run(), name="cluster"))
        if self.lease is not None:
            self._cluster.append(asyncio.create_task(self.lease.run(), name="lease"))
        if self.journal_service is None:
            await self.alerting.start()
            return
        service = self.journal_service
        await service.start()
        try:  # a reachable database is migrated before the first request
            await asyncio.wait_for(service.ready(), 5.0)
        except TimeoutError:
            log.warning(
                "journal database not ready; serving anyway, spooling to %s", service.wal.directory
            )
        await self.alerting.start()
        if self.gateway.deferred is not None:
            self._start_job("deferred", self.gateway.deferred.run())
        if self.retention is not None:
            self._start_job("retention", self.retention.run())
        # the plan's scheduled drills (read at every tick: a reload may add some)
        self._start_job("drills", self.drills.run_schedule())
        if self.chat is not None:  # the queued answers, tried again until one is served
            self._start_job("chat", self.chat.engine.run())

    def _start_job(self, name: str, job: Coroutine[Any, Any, None]) -> None:
        assert self.journal_service is not None
        task = asyncio.create_task(_after(self.journal_service, job), name=name)
        self._background.append(task)

    async def aclose(self) -> None:
        """Stop background jobs, close provider connections and the journal."""
        await self.drills.aclose()
        await cancellation.stop(self._cluster)  # bounded: a stop must not hang on one
        self._cluster.clear()
        await self.alerting.stop()
        if self.chat is not None:
            await self.chat.engine.aclose()
        await cancellation.stop(self._background)
        self._background.clear()
        await cancellation.stop(list(self._retiring))
        await self.gateway.aclose()
        if isinstance(self.ledger, RedisLedger):
            await self.ledger.close()
        if self.journal_service is not None:
            await self.journal_service.stop()


async def _after(service: JournalService, job: Coroutine[Any, Any, None]) -> None:
    """Run a journal job once the journal database is ready."""
    try:
        await service.ready()
    except BaseException:
        job.close()
        raise
    await job
