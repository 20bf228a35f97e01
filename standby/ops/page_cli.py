"""``standby status-page``: the public status page alone, reading the journal's database.

``standby serve`` starts it by itself when the plan has ``status_page.listen``; run by
hand, it serves the page of a gateway whose journal is in the same database (a page on
another machine than the gateway, reading its PostgreSQL journal).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Literal

import click

from standby.cli import _load, _startup_errors


@click.command("status-page")
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The gateway's downtime plan (YAML): its status_page section and its journal.",
)
@click.option(
    "--listen",
    default=None,
    metavar="HOST:PORT",
    help="Address to serve the page on (default: the plan's status_page.listen).",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--log-format", default="text", show_default=True, type=click.Choice(["text", "json"])
)
# how `standby serve` starts it: the socket it bound, the plan on standard input
@click.option("--from-gateway", "socket_fd", type=int, default=None, hidden=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, hidden=True)
def status_page_command(
    plan_path: str | None,
    listen: str | None,
    log_level: str,
    log_format: Literal["text", "json"],
    socket_fd: int | None,
    data_dir: str | None,
) -> None:
    """Serve the public status page (/status, its API, feeds, badges and
    subscriptions) from the journal's database, without the gateway's API.

    The page shows what the gateway journaled: open incidents within a second, the
    figures within a minute. Whatever keeps it from starting is said in one line, with
    exit status 1.
    """
    from standby.web.page_process import lower_priority, run_page
    from standby.web.serve import configure_logging
    from standby.web.serve import listen as bind

    configure_logging(log_level, log_format)
    if socket_fd is not None:  # started by the gateway, which bound the address
        lower_priority()
        sock = socket.socket(fileno=socket_fd)
        folder = Path(data_dir) if data_dir else Path.cwd()
        with _startup_errors(traceback=log_level == "debug"):
            run_page(sock, data_dir=folder, log_level=log_level, pipe=sys.stdin.buffer)
        return
    if not plan_path:
        raise click.UsageError("--plan is required")
    plan, _ = _load(plan_path)
    address = listen or plan.status_page.listen
    if not address:
        raise click.UsageError("no address: give --listen HOST:PORT or set status_page.listen")
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise click.UsageError(f"--listen must be HOST:PORT, got {address!r}")
    with _startup_errors(traceback=log_level == "debug"):
        sock = bind(host.strip("[]"), int(port))
        shown = sock.getsockname()
        click.echo(f"Standby status page on http://{shown[0]}:{shown[1]}/status", err=True)
        run_page(
            sock,
            data_dir=Path(plan_path).resolve().parent,
            log_level=log_level,
            plan=plan,
        )
