"""Run a real Standby gateway in the current event loop, on a free loopback port.

Shipped with the package (like the sim provider) so tests, the demo and the benchmarks
share one way of starting a gateway from a plan dict, without a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import uvicorn

from standby.plan.model import Plan
from standby.web.app import StandbyApp
from standby.web.serve import uvicorn_config


class RunningGateway:
    """A gateway serving on ``base_url`` until the context exits."""

    def __init__(self, app: StandbyApp, port: int) -> None:
        self.app = app
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.root_url = f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def running_gateway(
    plan: Plan | dict[str, Any],
    *,
    clock: Callable[[], float] | None = None,
    rng: random.Random | None = None,
    data_dir: Path | Literal["temporary"] | None = "temporary",
) -> AsyncIterator[RunningGateway]:
    """Serve ``plan`` on 127.0.0.1 (a free port) for the duration of the ``async with``.

    The journal lives in ``data_dir``: by default a temporary directory removed afterwards;
    ``None`` switches journaling off.
    """
    if isinstance(plan, dict):
        plan = Plan.model_validate(plan)
    with contextlib.ExitStack() as stack:
        if data_dir == "temporary":
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="standby-")))
        async with _serving(plan, clock, rng, data_dir) as gateway:
            yield gateway


@contextlib.asynccontextmanager
async def _serving(
    plan: Plan, clock: Callable[[], float] | None, rng: random.Random | None, data_dir: Path | None
) -> AsyncIterator[RunningGateway]:
    kwargs: dict[str, Any] = {"rng": rng or random.Random(7), "data_dir": data_dir}
    if clock is not None:
        kwargs["clock"] = clock
    app = StandbyApp(plan, **kwargs)
    config = uvicorn_config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the gateway stopped before it started")
            await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield RunningGateway(app, port)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
