"""The chat page wired into the gateway: its engine over the current plan's router and
the journal, who is asking (the plan's client keys), and what the page says of the
providers (breakers and open incidents).

It lives as long as the process (answers being written outlive a plan reload); each
question takes the router of the plan in force when it is asked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from standby.chat.app import chat_app
from standby.chat.engine import ChatEngine
from standby.chat.store import ChatStore
from standby.health.registry import HealthRegistry
from standby.incidents.manager import IncidentManager
from standby.journal.service import JournalService
from standby.plan.model import Plan
from standby.routing.router import Router
from standby.web.asgi import Receive, Scope, Send
from standby.web.clients import ClientKeys

log = logging.getLogger("standby.chat")


class ChatPage:
    def __init__(
        self,
        service: JournalService,
        *,
        plan: Callable[[], Plan],
        router: Callable[[], Router],
        registry: Callable[[], HealthRegistry],
        keys: Callable[[], ClientKeys],
        incidents: IncidentManager,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.registry = registry
        self.incidents = incidents
        self.clock = clock
        self.engine = ChatEngine(
            ChatStore(service.store.engine),
            router,
            service.journal,
            default_model=self.default_model,
        )

        def identify(request: Request) -> str | None:
            return keys().identify(request.scope).name

        self.app = chat_app(self.engine, identify, self.status)

    def default_model(self) -> str:
        plan = self.plan()
        if plan.chat.model:
            return plan.chat.model
        return next((name for name in plan.routes if not any(c in name for c in "*?[")), "")

    async def status(self) -> dict[str, Any]:
        """Each provider at a glance (up, degraded, down) and the open incidents."""
        plan, registry, now = self.plan(), self.registry(), self.clock()
        states: dict[str, list[str]] = {name: [] for name in plan.providers}
        for key in registry.keys():
            provider = key.partition("/")[0]
            if provider in states:
                health = registry.get(key)
                held = health.is_held(now)
                states[provider].append("held" if held else health.breaker.state(now))
        open_ones = self.incidents.open_incidents()
        providers = []
        for name, seen in states.items():
            troubled = [i for i in open_ones if i.component.partition("/")[0] == name]
            if seen and all(s != "closed" for s in seen):
                state = "down"
            elif troubled or any(s != "closed" for s in seen):
                state = "degraded"
            else:
                state = "up"
            detail = "; ".join(i.title for i in troubled) or None
            providers.append({"name": name, "state": state, "detail": detail})
        return {
            "providers": providers,
            "incidents": [
                {"id": i.id, "title": i.title, "status": i.status, "component": i.component}
                for i in open_ones
                if not i.muted
            ],
            "models": [name for name in plan.routes if not any(c in name for c in "*?[")],
            "default_model": self.default_model(),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
