"""The public status page served by a process of its own, reading the journal's database.

With ``status_page: {listen: "host:port"}`` the page is not served by the gateway's
event loop: a flood of visitors during an outage (when everyone refreshes the page at
once) would queue the API's requests behind theirs.  ``standby serve`` starts this
process instead:

* the gateway binds the page's address itself (a busy port is its one-line error before
  anything starts) and hands the listening socket down;
* it sends the plan as one JSON line on the child's standard input, and every plan a
  reload swaps in after it; it ends the child by closing that pipe — and a gateway
  killed outright closes it too, so the page never outlives its gateway;
* the child keeps off the gateway's cores when the gateway is pinned to some and the
  machine has others (``spare_cores``), and runs in Linux's idle scheduling class
  (elsewhere at ``NICENESS``): when both want a core, the API's requests go first.

The child reads everything from the journal's database: the open incidents (a small
query every second says whether any changed; the gateway writes each change there as it
happens), past incidents and the hourly figures (``statuspage.source``).  It also runs
the subscribers' deliveries, which the gateway then leaves to it.

``standby status-page`` runs the same process by hand: a page on another machine,
reading the same PostgreSQL journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from uvicorn.loops.auto import auto_loop_factory

from standby.incidents.manager import route_targets
from standby.journal.incident_store import IncidentRow, IncidentStore
from standby.journal.service import callback_secret, journal_url
from standby.journal.sql import open_engine
from standby.journal.subscription_store import SubscriptionStore
from standby.plan.model import Plan
from standby.statuspage.app import status_app
from standby.statuspage.model import PageView
from standby.statuspage.source import PageSource
from standby.statuspage.subscribe import routes as subscribe_routes
from standby.statuspage.subscriptions import (
    DELIVERY_INTERVAL,
    SubscriptionConfig,
    SubscriptionService,
    subscription_key,
)
from standby.web.limits import limited_protocol, uvicorn_concurrency_limit

log = logging.getLogger("standby.statuspage")

NICENESS = 10  # the page process's CPU priority below the gateway's, without SCHED_IDLE
OPEN_INTERVAL = 1.0  # seconds between two looks at the open incidents
PLAN_LINE_LIMIT = 16 * 1024 * 1024  # one plan, as JSON, on the pipe
STOP_WITHIN = 5.0  # seconds the child has to end once its pipe is closed
KEEP_ALIVE = 75  # as the gateway's (longer than load balancers' idle timeouts)
BACKLOG = 4096


class OpenIncidents:
    """The open incidents as the journal's database has them, read again when a small
    query says one changed; the database away, the last ones read stay."""

    def __init__(self, store: IncidentStore) -> None:
        self.store = store
        self.rows: list[IncidentRow] = []
        self.marks: list[tuple[str, float]] | None = None
        self.failing = False

    def __call__(self) -> list[IncidentRow]:
        return self.rows

    async def refresh(self) -> bool:
        """Look again; ``True`` when the open incidents changed."""
        try:
            marks = await self.store.open_marks()
            if marks == self.marks:
                changed = False
            else:
                self.rows = await self.store.open_with_timelines()
                self.marks, changed = marks, True
        except Exception as exc:
            if not self.failing:
                log.warning(
                    "status page: cannot read the open incidents (%s); the page shows the "
                    "last ones read",
                    exc,
                )
            self.failing = True
            return False
        if self.failing:
            log.warning("status page: the open incidents can be read again")
            self.failing = False
        return changed

    async def run(self, interval: float) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(interval)


class PageProcess:
    """The page's app and background work, over the journal's database at ``url``;
    ``secret`` is the journal's callback secret (subscribers' tokens derive from it, so
    links the gateway's page sent keep working here)."""

    def __init__(
        self,
        plan: Plan,
        *,
        url: str,
        secret: str,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.plan = plan
        self.engine = open_engine(url)
        self.open = OpenIncidents(IncidentStore(self.engine))
        self.source = PageSource(
            lambda: self.plan, self.open, route_targets=route_targets, clock=clock, wall=wall
        )
        self.source.attach(self.engine)
        self.subscriptions: SubscriptionService | None = None
        if plan.status_page.subscriptions.enabled:
            self.subscriptions = SubscriptionService(
                SubscriptionStore(self.engine),
                SubscriptionConfig.from_plan(plan, subscription_key(secret)),
                self.page_now,
            )
        self._tasks: list[asyncio.Task[None]] = []

    def use(self, plan: Plan) -> None:
        """Show ``plan``'s page from now on (the gateway reloaded it)."""
        self.plan = plan
        self.source.forget()

    async def page_now(self) -> PageView:
        return await self.source.view(None)

    def routes(self) -> list[BaseRoute]:
        return [] if self.subscriptions is None else list(subscribe_routes(self.subscriptions))

    def app(self) -> Starlette:
        return status_app(self.source.view, self.routes())

    async def start(self) -> None:
        await self.open.refresh()
        self._tasks.append(asyncio.create_task(self._watch(), name="open incidents"))
        if self.subscriptions is not None:
            job = self.subscriptions.run(self.page_now, DELIVERY_INTERVAL)
            self._tasks.append(asyncio.create_task(job, name="subscriptions"))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(OPEN_INTERVAL)
            await self.open.refresh()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.source.aclose()
        if self.subscriptions is not None:
            await self.subscriptions.aclose()
        await self.engine.dispose()


def page_config(app: Starlette, plan: Plan, sock: socket.socket, log_level: str) -> uvicorn.Config:
    """uvicorn's configuration for the page: the gateway's limits on headers, bodies,
    connections and time."""
    server = plan.server
    host, port = sock.getsockname()[:2]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        access_log=False,
        lifespan="off",
        http=limited_protocol(server),
        server_header=False,
        date_header=True,
        limit_concurrency=uvicorn_concurrency_limit(server.max_connections),
        proxy_headers=False,
        timeout_keep_alive=KEEP_ALIVE,
        backlog=BACKLOG,
    )


def run_page(
    sock: socket.socket,
    *,
    data_dir: Path,
    log_level: str,
    plan: Plan | None = None,
    pipe: IO[bytes] | None = None,
) -> None:
    """Serve the page on ``sock`` until SIGINT/SIGTERM (blocking).  The plan is
    ``plan``, or (from the gateway) the first line on ``pipe``; each later line is a
    reloaded plan, and the pipe's end ends the page."""
    with asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
        runner.run(_serve(sock, data_dir=data_dir, log_level=log_level, plan=plan, pipe=pipe))


async def _serve(
    sock: socket.socket,
    *,
    data_dir: Path,
    log_level: str,
    plan: Plan | None,
    pipe: IO[bytes] | None,
) -> None:
    lines = await _reader(pipe) if pipe is not None else None
    if plan is None:
        assert lines is not None, "a plan, or a pipe that brings it"
        plan = _plan_of(await lines.readline())
        if plan is None:
            return  # the gateway went away before it said anything
    process = PageProcess(
        plan,
        url=journal_url(plan.journal, data_dir),
        secret=callback_secret(plan.journal, data_dir).value,
    )
    server = uvicorn.Server(page_config(process.app(), plan, sock, log_level))
    await process.start()
    follow = asyncio.create_task(_follow(process, server, lines)) if lines is not None else None
    try:
        await server.serve(sockets=[sock])
    finally:
        if follow is not None:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow
        await process.aclose()


async def _reader(pipe: IO[bytes]) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=PLAN_LINE_LIMIT)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


def _plan_of(line: bytes) -> Plan | None:
    if not line.strip():
        return None
    try:
        return Plan.model_validate_json(line)
    except ValidationError as exc:  # the gateway checked it: a bug, said, and not applied
        log.error("status page: the gateway's plan could not be read: %s", exc)
        return None


async def _follow(
    process: PageProcess, server: uvicorn.Server, lines: asyncio.StreamReader
) -> None:
    """Apply each plan the gateway sends; end the page when the gateway is gone."""
    while line := await lines.readline():
        plan = _plan_of(line)
        if plan is not None:
            process.use(plan)
            log.info("status page: the gateway's reloaded plan applied")
    server.should_exit = True


class PageChild:
    """The page process as the gateway sees it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @classmethod
    def start(
        cls,
        plan: Plan,
        sock: socket.socket,
        *,
        data_dir: Path,
        log_level: str,
        log_format: str,
    ) -> PageChild:
        """Start the page on ``sock`` (the gateway bound it) with ``plan``."""
        fd = sock.fileno()
        args = [
            sys.executable,
            "-m",
            "standby",
            "status-page",
            "--from-gateway",
            str(fd),
            "--data-dir",
            str(data_dir),
            "--log-level",
            log_level,
            "--log-format",
            log_format,
        ]
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, pass_fds=(fd,))
        child = cls(proc)
        child.send(plan)
        return child

    def send(self, plan: Plan) -> None:
        """Tell the page the plan the gateway serves now."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(plan.model_dump_json().encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):  # ended on its own: its log says why
            log.error("status page: its process has ended (exit code %s)", self.proc.poll())

    def stop(self) -> int | None:
        """End the page: close its pipe, wait for it, and if it lingers, terminate it."""
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.close()
        try:
            return self.proc.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                return self.proc.wait(STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()


def lower_priority() -> None:
    """Yield the CPU to the gateway whenever it wants it: Linux's idle scheduling class
    (a gateway thread that wakes up takes the core at once; the page gets every moment
    the gateway leaves), else ``NICENESS`` below it."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
