"""Run the gateway under uvicorn (uvloop + httptools when installed)."""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path

import uvicorn

from standby.plan.model import Plan
from standby.web.app import StandbyApp


def uvicorn_config(app: StandbyApp, *, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        loop="auto",
        http="auto",
        server_header=False,
        date_header=False,
        timeout_keep_alive=75,
        backlog=4096,
    )


def run_server(
    plan: Plan, *, host: str, port: int, log_level: str = "warning", data_dir: Path | None = None
) -> None:
    """Serve ``plan`` until SIGINT/SIGTERM (blocking); the journal lives in ``data_dir``."""
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = StandbyApp(plan, data_dir=data_dir or Path.cwd())
    # Everything built so far lives as long as the process: keep it out of the collector's
    # scans, and collect young objects less often (fewer, shorter pauses on the hot path).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    print(f"Standby listening on http://{host}:{port}/v1", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn_config(app, host=host, port=port, log_level=log_level)).run()
