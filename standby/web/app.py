"""The composition root: a plan in, one ASGI application out.

Everything is built here from the plan and passed down explicitly: providers, the health
registry and its gate, metrics, the router, the wire handlers.  Nothing is built at import
time and nothing lives in a module global, so tests can run several apps side by side.

Requests on the OpenAI wire are dispatched by a dict lookup straight to raw-ASGI handlers
(the hot path); everything else goes to a small Starlette app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from standby.health.gate import RegistryGate
from standby.health.registry import HealthRegistry
from standby.journal.deferred import DeferredRunner
from standby.journal.retention import RetentionJob
from standby.journal.service import JournalService
from standby.metrics import Metrics
from standby.plan.model import Plan
from standby.providers.base import Provider
from standby.providers.registry import build_provider
from standby.routing.router import Router
from standby.web.admin_api import admin_app
from standby.web.anthropic_api import AnthropicWire
from standby.web.asgi import ClientKeys, Receive, Scope, Send
from standby.web.openai_api import OpenAIWire
from standby.web.responses_api import ResponsesWire

log = logging.getLogger("standby")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


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
    ) -> None:
        self.plan = plan
        self.data_dir = data_dir
        self.metrics = Metrics()
        self.registry = HealthRegistry(plan.breaker, trial_timeout=plan.timeouts.total)
        self.providers = (
            providers
            if providers is not None
            else {name: build_provider(name, config) for name, config in plan.providers.items()}
        )
        self.gate = RegistryGate(self.registry, self.metrics)
        self.router = Router(plan, self.providers, self.gate, self.metrics, clock=clock, rng=rng)
        # no data directory (an embedded gateway): nothing is journaled
        self.journal_service = (
            JournalService(plan.journal, data_dir)
            if data_dir is not None and plan.journal.enabled
            else None
        )
        keys = ClientKeys(plan.server.client_keys)
        service = self.journal_service
        self.deferred = DeferredRunner(self.router, service) if service is not None else None
        self.retention = (
            RetentionJob(service.store, plan.journal.retain) if service is not None else None
        )
        self._background: list[asyncio.Task[None]] = []
        wire = OpenAIWire(
            self.router,
            keys,
            plan.server.max_body,
            journal=service.journal if service else None,
            store=plan.journal.store,
            deferrals=self.deferred,
        )
        anthropic = AnthropicWire(
            self.router, keys, plan.server.max_body, journal=service.journal if service else None
        )
        responses = ResponsesWire(
            self.router, keys, plan.server.max_body, service=service, store=plan.journal.store
        )
        self._hot: dict[tuple[str, str], Handler] = {}
        for prefix in ("/v1", ""):
            self._hot[("POST", f"{prefix}/responses")] = responses.responses
            self._hot[("POST", f"{prefix}/messages")] = anthropic.messages
            self._hot[("POST", f"{prefix}/chat/completions")] = wire.chat
            self._hot[("POST", f"{prefix}/embeddings")] = wire.embeddings
            self._hot[("GET", f"{prefix}/models")] = wire.models
        self._admin = admin_app(
            self.router,
            self.registry,
            self.gate,
            self.metrics,
            admin_token=plan.server.admin_token,
            clock=clock,
            journal=service,
            keys=keys,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self._hot.get((scope["method"], scope["path"]))
            if handler is not None:
                await handler(scope, receive, send)
            else:
                await self._admin(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

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
        if self.journal_service is None:
            return
        service = self.journal_service
        await service.start()
        try:  # a reachable database is migrated before the first request
            await asyncio.wait_for(service.ready(), 5.0)
        except TimeoutError:
            log.warning(
                "journal database not ready; serving anyway, spooling to %s", service.wal.directory
            )
        for name, job in (("deferred", self.deferred), ("retention", self.retention)):
            if job is not None:
                self._background.append(asyncio.create_task(_after(service, job.run()), name=name))

    async def aclose(self) -> None:
        """Stop background jobs, close provider connections and the journal."""
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        if self.deferred is not None:
            await self.deferred.stop()
        for provider in self.providers.values():
            await provider.aclose()
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
