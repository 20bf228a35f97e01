"""Run a simulated provider as a process: ``standby sim`` (see ``cli``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from standby.providers.sim.server import SimProvider


def run_sim(host: str, port: int, name: str, words: int, chunk_delay: float) -> None:
    """Serve a simulated provider until Ctrl-C or SIGTERM (uvloop when installed)."""

    async def serve() -> None:
        sim = SimProvider(name, words=words, chunk_delay=chunk_delay)
        await sim.start(host, port)
        print(sim.base_url, flush=True)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await sim.stop()

    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())
