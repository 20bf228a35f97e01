"""Run the gateway under uvicorn (uvloop + httptools), with its limits and its logs.

``run_server`` binds the listening socket itself before anything else, so a busy port is a
one-line ``StartupError`` (not a uvicorn log line and an exit), and hands that socket to
uvicorn, so nothing can take the port in between.  ``uvicorn_config`` is shared with the
in-process gateways of ``standby.testing`` and the demo: every gateway gets the plan's
connection limits (``web.limits``) and the access log (``web.access_log``).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import math
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import uvicorn

from standby.errors import StartupError
from standby.plan.model import Plan
from standby.web.access_log import AccessLog, JsonFormatter
from standby.web.app import StandbyApp
from standby.web.limits import connection_cap, limited_protocol, uvicorn_concurrency_limit
from standby.web.page_process import PageChild
from standby.web.reload import PlanReloader

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# longer than the idle timeout of the load balancers usually put in front (60 s), so they
# never send a request on a connection Standby is closing
KEEP_ALIVE = 75
BACKLOG = 4096


def uvicorn_config(
    app: StandbyApp,
    *,
    host: str,
    port: int,
    log_level: str,
    max_connections: int | None = None,
) -> uvicorn.Config:
    """uvicorn's configuration for ``app``: the plan's limits, the access log, no banners.

    ``max_connections`` overrides the plan's (``run_server`` lowers it to what the
    open-files limit allows).  uvicorn leaves logging alone: records propagate to the
    root logger, which ``run_server`` (or the embedding program) configures.
    """
    server = app.plan.server
    return uvicorn.Config(
        AccessLog(app, metrics=app.metrics),
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="auto",
        # the journal's events of a pass are written before the pass's bytes to clients
        http=limited_protocol(server, before_write=app.before_write),
        server_header=False,
        date_header=False,
        # Standby reads no client address, so it needs no X-Forwarded-* rewriting (and a
        # layer less on every request)
        proxy_headers=False,
        timeout_keep_alive=KEEP_ALIVE,
        limit_concurrency=uvicorn_concurrency_limit(max_connections or server.max_connections),
        backlog=BACKLOG,
        # a stop waits for the requests in flight, but not for ever (a healthy stream has
        # no total deadline); what is still running then is cancelled.  uvicorn takes
        # whole seconds
        timeout_graceful_shutdown=math.ceil(server.drain),
    )


def run_server(
    plan: Plan,
    *,
    host: str,
    port: int,
    log_level: str = "warning",
    log_format: LogFormat = "text",
    data_dir: Path | None = None,
    plan_path: Path | None = None,
    banner: Sequence[str] = (),
) -> None:
    """Serve ``plan`` until SIGINT/SIGTERM (blocking); the journal lives in ``data_dir``.

    ``plan_path`` is the file the plan was read from: SIGHUP reads it again and swaps it
    in (``web.reload``); without it (a plan built from the environment) SIGHUP is ignored.  Raises
    ``StartupError`` when the address cannot be listened on (a busy port, above all),
    before anything is printed.
    """
    sock = listen(host, port)
    page_sock: socket.socket | None = None
    try:
        if plan.status_page.enabled and plan.status_page.listen:
            page_host, _, page_port = plan.status_page.listen.rpartition(":")
            page_host = page_host.strip("[]")
            page_sock = listen(page_host, int(page_port))
        configure_logging(log_level, log_format)
        upstream = sum(provider.max_connections for provider in plan.providers.values())
        max_connections = connection_cap(plan.server.max_connections, upstream=upstream)
        # with a page of its own, that process tells the subscribers
        app = StandbyApp(plan, data_dir=data_dir or Path.cwd(), page_process=page_sock is not None)
        config = uvicorn_config(
            app,
            host=host,
            port=sock.getsockname()[1],
            log_level=log_level,
            max_connections=max_connections,
        )
        # Everything built so far lives as long as the process: keep it out of the
        # collector's scans, and collect young objects less often (fewer, shorter pauses
        # on the hot path).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        shown = f"[{host}]" if ":" in host else host
        if app.shared is not None:  # what the cluster view says of this replica
            # a wildcard bind says nothing: every container would show 0.0.0.0:8080
            where = socket.gethostname() if host in ("0.0.0.0", "::", "") else shown
            app.shared.about["address"] = f"{where}:{config.port}"
        for line in banner:  # what the plan is: said once the address is known to be ours
            announce(line, log_format)
        announce(f"Standby listening on http://{shown}:{config.port}/v1", log_format)
        reloader = PlanReloader(app, plan_path, host=host) if plan_path is not None else None
        page: PageChild | None = None
        if page_sock is not None:  # the public page in a process of its own
            page = PageChild.start(
                plan,
                page_sock,
                data_dir=data_dir or Path.cwd(),
                log_level=log_level,
                log_format=log_format,
            )
            if reloader is not None:
                reloader.then = page.send
            where = page_sock.getsockname()
            announce(f"Status page also on http://{where[0]}:{where[1]}/status", log_format)
            page_sock.close()  # the page's process holds it now
            page_sock = None
        server = uvicorn.Server(config)
        try:
            with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
                runner.run(_serve(server, sock, reloader))
        finally:
            if page is not None:
                page.stop()
    finally:
        sock.close()
        if page_sock is not None:
            page_sock.close()


async def _serve(
    server: uvicorn.Server, sock: socket.socket, reloader: PlanReloader | None
) -> None:
    """uvicorn's serve, with SIGHUP re-reading the plan (uvicorn handles INT and TERM)."""
    loop = asyncio.get_running_loop()
    if reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, reloader.request)
    try:
        await server.serve(sockets=[sock])
    finally:
        if reloader is not None:
            loop.remove_signal_handler(signal.SIGHUP)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``; ``StartupError`` saying why if it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise StartupError(cannot_listen(host, port, exc)) from exc
    return sock


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """One line saying why ``host:port`` cannot be listened on, and what to do."""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use; stop the program using it "
            "or choose another port (--port)"
        )
    if exc.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges; choose a port above 1023 (--port)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine; choose another host (--host)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {host!r}; choose another host (--host)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def announce(line: str, log_format: LogFormat) -> None:
    """Say where the gateway listens on stderr, whatever the log level (as JSON in json)."""
    if log_format == "json":
        record = logging.LogRecord("standby", logging.INFO, __file__, 0, line, None, None)
        line = JsonFormatter().format(record)
    print(line, file=sys.stderr, flush=True)


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Every record, Standby's and uvicorn's, to stderr: as text, or one JSON object a line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
