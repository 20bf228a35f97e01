"""A real ``standby serve`` process for end-to-end tests: the CLI, the plan file, uvicorn.

``served(plan_text, tmp_path)`` writes the plan beside a fresh data directory, starts
``python -m standby.cli serve`` on a free loopback port, waits (bounded) until
``/healthz`` answers, and stops the process by its PID afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

START_WAIT = 30.0
STOP_WAIT = 20.0  # SIGTERM → exit: the shutdown drains, each part bounded


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServedGateway:
    process: asyncio.subprocess.Process
    port: int
    plan_path: Path
    stderr: list[str] = field(default_factory=list)  # what the gateway printed so far

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"


@contextlib.asynccontextmanager
async def served(
    plan_text: str, directory: Path, *, extra_args: tuple[str, ...] = ()
) -> AsyncIterator[ServedGateway]:
    """``standby serve`` with ``plan_text`` as its plan, until the ``async with`` ends."""
    plan_path = directory / "plan.yaml"
    plan_path.write_text(plan_text)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "standby.cli",
        "serve",
        "--plan",
        str(plan_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra_args,
        # a gateway that will not stop is asked for its threads' stacks (SIGABRT)
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    gateway = ServedGateway(process, port, plan_path)
    drain = asyncio.create_task(_drain(gateway))
    try:
        await _wait_ready(gateway)
        yield gateway
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(STOP_WAIT):
                await process.wait()
        except TimeoutError:
            await _stuck(gateway)
        drain.cancel()


async def _stuck(gateway: ServedGateway) -> None:
    """A gateway still running ``STOP_WAIT`` seconds after SIGTERM: fail with where its
    threads were (faulthandler prints them on SIGABRT) and the end of what it logged."""
    gateway.process.send_signal(signal.SIGABRT)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await gateway.process.wait()
    if gateway.process.returncode is None:
        gateway.process.kill()
        await gateway.process.wait()
    await asyncio.sleep(0.1)  # let the drain read what it printed last
    printed = "\n".join(gateway.stderr[-80:])
    raise AssertionError(
        f"standby serve did not stop within {STOP_WAIT:g} s of SIGTERM:\n{printed}"
    )


async def _drain(gateway: ServedGateway) -> None:
    """Keep reading stderr so that a chatty gateway never blocks on a full pipe."""
    assert gateway.process.stderr is not None
    while line := await gateway.process.stderr.readline():
        gateway.stderr.append(line.decode(errors="replace").rstrip())


async def _wait_ready(gateway: ServedGateway) -> None:
    async with asyncio.timeout(START_WAIT), aiohttp.ClientSession() as http:
        while True:
            if gateway.process.returncode is not None:
                await asyncio.sleep(0.1)  # let the drain read what it printed last
                printed = "\n".join(gateway.stderr[-20:])
                raise RuntimeError(
                    f"standby serve exited with {gateway.process.returncode}:\n{printed}"
                )
            try:
                async with http.get(f"{gateway.root_url}/healthz") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)  # the process is still starting: poll, bounded above
