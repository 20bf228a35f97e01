"""Run a simulated provider as a process: ``standby sim`` (see ``cli``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal

from standby.errors import StartupError
from standby.sim.server import SimProvider


def run_sim(host: str, port: int, name: str, words: int, chunk_delay: float) -> None:
    """Serve a simulated provider until Ctrl-C or SIGTERM (uvloop when installed).

    Raises ``StartupError`` when ``host:port`` cannot be listened on (a busy port, above
    all), before the base URL is printed.
    """

    async def serve() -> None:
        sim = SimProvider(name, words=words, chunk_delay=chunk_delay)
        try:
            await sim.start(host, port)
        except OSError as exc:
            await sim.stop()
            raise StartupError(_cannot_listen(host, port, exc)) from exc
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


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use; stop the program using it "
            "or choose another port (--port)"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
