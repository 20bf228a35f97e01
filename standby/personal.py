"""``standby chat``: Standby for one person — the chat page on their own machine.

The plan is, in order: the file given with ``--plan``; else one built from the provider
keys in the environment (``plan.defaults``); else two simulated providers started here
(``primary`` and ``backup``), so the page works, and shows a failover, with no key at
all.  The chat is switched on in any case, and conversations are kept in the journal's
database in the data directory (by default ``$XDG_DATA_HOME/standby-chat``), so they
outlive the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import webbrowser
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn

from standby.errors import PlanError
from standby.plan.defaults import default_plan
from standby.plan.load import load_plan
from standby.plan.model import Plan
from standby.sim import SimProvider
from standby.web.app import StandbyApp
from standby.web.serve import announce, configure_logging, listen, uvicorn_config

ROUTE = "gpt-4o-mini"


def data_home(env: Mapping[str, str]) -> Path:
    """Where a person's conversations are kept by default."""
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "standby-chat"


def sims_plan(primary_url: str, backup_url: str) -> dict[str, Any]:
    """The plan over two simulated providers: ``gpt-4o-mini`` on one, then the other."""
    return {
        "providers": {
            "primary": {"base_url": primary_url, "api_key": "sk-sim-primary"},
            "backup": {"base_url": backup_url, "api_key": "sk-sim-backup"},
        },
        "routes": {ROUTE: {"targets": [f"primary/{ROUTE}", f"backup/{ROUTE}"]}},
        "timeouts": {"connect": "1s", "first_token": "3s", "idle": "3s", "total": "60s"},
        "breaker": {"failures": 3, "ejection": "5s", "max_ejection": "30s"},
        "probes": {"interval": "5s"},
        "chat": {"enabled": True, "model": ROUTE},
    }


def choose_plan(plan_path: str | None, env: Mapping[str, str]) -> tuple[Plan | None, str]:
    """The plan to chat with, and what it is; None: the simulated providers' (built once
    they listen)."""
    if plan_path:
        plan = load_plan(plan_path, env)
        what = f"plan: {plan_path}"
    else:
        try:
            plan, lines = default_plan(env)
        except PlanError:
            return None, "no provider key in the environment: two simulated providers"
        what = "; ".join(lines)
    chat = plan.chat.model_copy(update={"enabled": True})
    return plan.model_copy(update={"chat": chat}), what


async def run_chat(
    plan: Plan | None,
    *,
    host: str,
    port: int,
    data_dir: Path,
    open_browser: bool,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve the chat until cancelled (Ctrl-C); ``ready`` is set once it listens
    (``data_dir`` must exist)."""
    async with contextlib.AsyncExitStack() as stack:
        if plan is None:
            primary = await stack.enter_async_context(_sim("primary"))
            backup = await stack.enter_async_context(_sim("backup"))
            plan = Plan.model_validate(sims_plan(primary.base_url, backup.base_url))
        sock = listen(host, port)
        stack.callback(sock.close)
        app = StandbyApp(plan, data_dir=data_dir)
        config = uvicorn_config(app, host=host, port=sock.getsockname()[1], log_level="warning")
        server = uvicorn.Server(config)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{config.port}/chat"
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if serving.done():
                    serving.result()
                    return
                await asyncio.sleep(0.01)
            announce(f"Standby chat on {url} (conversations in {data_dir})", "text")
            if ready is not None:
                ready.set()
            if open_browser:
                webbrowser.open(url)
            await serving
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(serving, timeout=10)


@contextlib.asynccontextmanager
async def _sim(name: str) -> AsyncIterator[SimProvider]:
    """A simulated provider whose answers are long enough to watch them stream."""
    async with SimProvider(name, words=80, chunk_delay=0.04) as sim:
        yield sim


def main(
    plan_path: str | None,
    *,
    host: str,
    port: int,
    data_dir: str | None,
    open_browser: bool,
    log_level: str,
) -> None:
    """``standby chat``'s body (the CLI parses; this runs)."""
    plan, what = choose_plan(plan_path, os.environ)
    configure_logging(log_level, "text")
    announce(what, "text")
    home = Path(data_dir) if data_dir else data_home(os.environ)
    home.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_chat(plan, host=host, port=port, data_dir=home, open_browser=open_browser))
