"""The composition root: a plan in, one ASGI application out.

Everything is built here from the plan and passed down explicitly: providers, the health
registry and its gate, metrics, the router, the wire handlers.  Nothing is built at import
time and nothing lives in a module global, so tests can run several apps side by side.

Requests on the OpenAI wire are dispatched by a dict lookup straight to raw-ASGI handlers
(the hot path); everything else goes to a small Starlette app.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from standby.health.gate import RegistryGate
from standby.health.registry import HealthRegistry
from standby.metrics import Metrics
from standby.plan.model import Plan
from standby.providers.base import Provider
from standby.providers.registry import build_provider
from standby.routing.router import Router
from standby.web.admin_api import admin_app
from standby.web.asgi import ClientKeys, Receive, Scope, Send
from standby.web.openai_api import OpenAIWire

log = logging.getLogger("standby")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class StandbyApp:
    """The Standby gateway as an ASGI application."""

    def __init__(self, plan: Plan, *, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None,
                 providers: dict[str, Provider] | None = None,
                 data_dir: Path | None = None) -> None:
        self.plan = plan
        self.data_dir = data_dir
        self.metrics = Metrics()
        self.registry = HealthRegistry(plan.breaker, trial_timeout=plan.timeouts.total)
        self.providers = providers if providers is not None else {
            name: build_provider(name, config) for name, config in plan.providers.items()}
        self.gate = RegistryGate(self.registry, self.metrics)
        self.router = Router(plan, self.providers, self.gate, self.metrics, clock=clock, rng=rng)
        wire = OpenAIWire(self.router, ClientKeys(plan.server.client_keys), plan.server.max_body)
        self._hot: dict[tuple[str, str], Handler] = {}
        for prefix in ("/v1", ""):
            self._hot[("POST", f"{prefix}/chat/completions")] = wire.chat
            self._hot[("POST", f"{prefix}/embeddings")] = wire.embeddings
            self._hot[("GET", f"{prefix}/models")] = wire.models
        self._admin = admin_app(self.router, self.registry, self.gate, self.metrics,
                                admin_token=plan.server.admin_token, clock=clock)

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
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
