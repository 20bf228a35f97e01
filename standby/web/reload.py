"""Re-read the plan on SIGHUP and swap it in, without dropping a request.

The plan file is read and validated off the event loop; an invalid plan is refused with
its errors (file, line, key) and the running plan keeps serving.  A valid one becomes a
new ``Gateway`` (``StandbyApp.reload``): requests already in flight finish on the old one.

Some settings are bound when the process starts and only change with a restart: the
address, the journal, and the connection limits uvicorn was configured with.  A reload
that changes them still applies the rest, and says what it kept.  A plan that would leave
a public address without client keys or an admin token is refused outright.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from standby.errors import PlanError
from standby.plan.load import load_plan
from standby.plan.model import Plan, is_loopback
from standby.web.app import StandbyApp

log = logging.getLogger("standby")

# server settings uvicorn and the listening socket were built with
_BOUND_AT_START = ("max_header", "header_timeout", "body_timeout", "max_connections")


class PlanReloader:
    """Reloads ``path`` into ``app``, which serves on ``host``."""

    def __init__(
        self,
        app: StandbyApp,
        path: Path,
        *,
        host: str,
        env: Mapping[str, str] | None = None,
        load: Callable[[Path, Mapping[str, str]], Plan] = load_plan,
    ) -> None:
        self.app = app
        self.path = path
        self.host = host
        self.env = env
        self._load = load
        self._task: asyncio.Task[bool] | None = None
        # told each plan swapped in (the status page's own process, when it has one)
        self.then: Callable[[Plan], None] | None = None
        self.reloads = 0  # plans swapped in, for tests and the log

    def request(self) -> None:
        """The SIGHUP handler: start a reload, unless one is already running."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.reload(), name="reload")

    async def reload(self) -> bool:
        """Read, check and swap in the plan; ``False`` when it was refused."""
        env = self.env if self.env is not None else dict(os.environ)
        try:
            plan = await asyncio.to_thread(self._load, self.path, env)
        except PlanError as error:
            log.error("plan reload refused, the running plan keeps serving:\n%s", error)
            return False
        if not is_loopback(self.host):
            missing = [
                key
                for key, value in (
                    ("server.client_keys", plan.server.client_keys),
                    ("server.admin_token", plan.server.admin_token),
                )
                if not value
            ]
            if missing:
                log.error(
                    "plan reload refused, the running plan keeps serving: the gateway listens "
                    "on %s and the new plan has no %s",
                    self.host,
                    " or ".join(missing),
                )
                return False
        bound = self.app.started_server
        kept = self.app.reload(plan)
        kept += [
            f"server.{name} (restart to change it)"
            for name in _BOUND_AT_START
            if getattr(plan.server, name) != getattr(bound, name)
        ]
        self.reloads += 1
        if self.then is not None:
            self.then(plan)
        log.warning("plan reloaded from %s", self.path)
        for item in kept:
            log.warning("plan reload: kept the running %s", item)
        return True
