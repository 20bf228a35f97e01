"""The ``standby`` command line: serve, status-page, demo, plan check, sim, key hash."""

from __future__ import annotations

import errno
import importlib
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import click

from standby import __version__
from standby.errors import PlanError, StandbyError
from standby.plan.defaults import default_plan
from standby.plan.load import load_plan
from standby.plan.model import Plan, is_loopback


class _Commands(click.Group):
    """The CLI, with the operator commands imported only when one of them runs (they pull
    in SQLAlchemy and rich, which ``serve`` with the journal off never needs)."""

    lazy = {
        "export": ("cli", "export_command"),
        "backup": ("cli", "backup_command"),
        "journal": ("cli", "journal_group"),
        "incidents": ("incidents_cli", "incidents_group"),
        "status": ("incidents_cli", "status_command"),
        "notify": ("incidents_cli", "notify_group"),
        "report": ("report_cli", "report_command"),
        "drill": ("drill_cli", "drill_command"),
        "cluster": ("cluster_cli", "cluster_group"),
        "import": ("import_cli", "import_group"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module_name, attribute = self.lazy[name]
            module = importlib.import_module(f"standby.ops.{module_name}")
            command: click.Command = getattr(module, attribute)
            return command
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="standby")
def main() -> None:
    """Standby keeps your AI features answering when an LLM provider goes down.

    Point your OpenAI SDK's base_url at Standby; it routes every request along the
    downtime plan and fails over between providers, even in the middle of a stream.
    """


def _load(path: str | None) -> tuple[Plan, list[str]]:
    try:
        if path:
            return load_plan(path, os.environ), [f"plan: {path}"]
        return default_plan(os.environ)
    except PlanError as error:
        raise click.ClickException(str(error)) from None


def _exposure_problem(plan: Plan, host: str, plan_path: str | None) -> str | None:
    """Why binding ``host`` would expose the gateway unguarded, if it would.

    A plan checks its own ``server.host``; ``--host`` can override a loopback plan, so
    the same rule is applied here to the address actually bound.
    """
    if is_loopback(host):
        return None
    needs = {
        "server.client_keys": (
            plan.server.client_keys,
            "client keys, so that only your clients spend your provider credit "
            "(`standby key hash`)",
        ),
        "server.admin_token": (
            plan.server.admin_token,
            'an admin token for the journal, health and metrics (admin_token: "${VAR}")',
        ),
    }
    missing = [key for key, (present, _) in needs.items() if not present]
    if not missing:
        return None
    where = "in the plan" if plan_path else "in a plan given with --plan"
    return (
        f"refusing to bind {host}, which is not a loopback address, without "
        f"{' and '.join(missing)} {where}: set {' and '.join(needs[k][1] for k in missing)}"
    )


@contextmanager
def _startup_errors(*, traceback: bool = False) -> Iterator[None]:
    """Whatever keeps a server from starting becomes one line and exit status 1.

    A busy port, an unusable journal database, a directory it may not write: the
    operator needs the reason, not a traceback (``traceback``: re-raise, for debugging).
    """
    try:
        yield
    except PlanError as error:
        raise click.ClickException(str(error)) from None  # one line per located problem
    except (StandbyError, OSError, ValueError, ImportError) as error:
        if traceback:
            raise
        raise click.ClickException(_one_line(error)) from None
    except Exception as error:
        # SQLAlchemy's own errors (a URL or driver it cannot use), caught without
        # importing SQLAlchemy into a gateway that may journal nothing
        if traceback or not type(error).__module__.startswith("sqlalchemy"):
            raise
        raise click.ClickException(
            f"cannot open the journal database: {_one_line(error)}"
        ) from None


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        if error.errno == errno.EADDRINUSE:
            return f"cannot start: the address is already in use ({error.strerror})"
        where = f": {error.filename}" if error.filename else ""
        return f"cannot start: {error.strerror}{where}"
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, StandbyError) else f"cannot start: {text}"


@main.command()
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The downtime plan (YAML). Without it, a plan is built from the provider "
    "keys in the environment (OPENAI_API_KEY first).",
)
@click.option(
    "--host",
    default=None,
    help="Address to bind (default: the plan's, 127.0.0.1). Any but a loopback address "
    "needs server.client_keys and server.admin_token in the plan.",
)
@click.option("--port", type=int, default=None, help="Port to bind (default: the plan's, 8080).")
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="debug also shows the traceback of a failed start.",
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="text: one readable line per event; json: one JSON object per line, for a log collector.",
)
def serve(
    plan_path: str | None,
    host: str | None,
    port: int | None,
    log_level: str,
    log_format: Literal["text", "json"],
) -> None:
    """Run the gateway: an OpenAI-compatible API in front of the plan's providers.

    Whatever keeps it from starting (a plan problem, a busy port, an unusable journal
    database) is reported on stderr in one line, with exit status 1.
    """
    plan, described = _load(plan_path)
    host = host or plan.server.host
    port = plan.server.port if port is None else port
    problem = _exposure_problem(plan, host, plan_path)
    if problem:
        raise click.ClickException(problem)
    data_dir = Path(plan_path).resolve().parent if plan_path else Path.cwd()
    with _startup_errors(traceback=log_level == "debug"):
        from standby.web.serve import run_server

        run_server(
            plan,
            host=host,
            port=port,
            log_level=log_level,
            log_format=log_format,
            data_dir=data_dir,
            plan_path=Path(plan_path) if plan_path else None,
            banner=described,
        )


@main.command("status-page")
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
    from standby.placement import spare_cores
    from standby.web.page_process import lower_priority, run_page
    from standby.web.serve import configure_logging
    from standby.web.serve import listen as bind

    configure_logging(log_level, log_format)
    if socket_fd is not None:  # started by the gateway, which bound the address
        spare_cores()
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


@main.group("plan")
def plan_group() -> None:
    """Work with downtime plan files."""


@plan_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--readiness",
    is_flag=True,
    help="Also flag what would not survive an outage: a route that losing one provider "
    "or one vendor leaves with nothing, an escalation that tells no one, and (from the "
    "journal) backups that answered nothing in the last --days days.",
)
@click.option("--days", type=click.FloatRange(min=1), default=30.0, show_default=True)
def plan_check(path: str, readiness: bool, days: float) -> None:
    """Validate the plan at PATH without starting anything.

    Every problem is printed on its own line as file:line: key: message, ordered by line
    (exit status 1): unknown keys, bad values, unset ${VAR}s, unknown providers, a
    journal URL that cannot work, a public host without client keys or admin token,
    duplicate keys. The plan's environment variables must be set, as for `serve`.
    With --readiness, each finding is a line too, and any makes the status 1.
    """
    plan, _ = _load(path)
    click.echo(f"{path}: ok — {len(plan.providers)} providers, {len(plan.routes)} routes")
    for name, route in plan.routes.items():
        tiers = " → ".join(" | ".join(ref.target for ref in tier) for tier in route.tier_list())
        click.echo(f"  {name}: {tiers}")
    if not readiness:
        return
    from standby.ops.readiness_cli import findings

    found = findings(plan, path, days)
    for finding in found:
        click.echo(f"{path}: {finding.where}: {finding.message}")
    if found:
        raise click.exceptions.Exit(1)
    click.echo(f"{path}: ready — every route survives the loss of any one provider and vendor")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9000, show_default=True)
@click.option("--name", default="sim", show_default=True, help="Name shown in answers.")
@click.option("--words", type=int, default=20, show_default=True, help="Words per answer.")
@click.option(
    "--chunk-delay",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds between streamed words.",
)
def sim(host: str, port: int, name: str, words: int, chunk_delay: float) -> None:
    """Run a simulated OpenAI-compatible provider with switchable faults.

    Faults are set at run time with POST /_sim/fault (e.g. {"kind": "error", "status": 503})
    or per request with the x-sim-fault header; see docs/operations.md.
    """
    from standby.sim import run_sim

    with _startup_errors():
        run_sim(host, port, name, words, chunk_delay)


@main.command()
@click.option("--port", type=int, default=8080, show_default=True, help="Gateway port.")
@click.option(
    "--once", is_flag=True, help="Run the scripted outage, then exit (no server left running)."
)
def demo(port: int, once: bool) -> None:
    """Two simulated providers behind the gateway, a scripted outage, the live failover.

    The gateway journals into a temporary directory, removed at exit, so stored
    completions and the Responses API's previous_response_id work against it.
    """
    from standby.demo import run_demo

    sys.exit(run_demo(port=port, keep_serving=not once))


@main.command()
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A downtime plan (YAML); default: one from the provider keys in the environment, "
    "or two simulated providers when there is none.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8090, show_default=True, help="Port to listen on.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where conversations are kept (the journal's database); "
    "default: $XDG_DATA_HOME/standby-chat.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def chat(
    plan_path: str | None,
    host: str,
    port: int,
    data_dir: str | None,
    open_browser: bool,
    log_level: str,
) -> None:
    """A chat page for one person at /chat that keeps working when a provider goes down.

    Answers stream through the plan's routes, so a provider failing before or during an
    answer is replaced by the next one (the answer says which model wrote it, and marks
    one continued elsewhere). Conversations stay on this machine; search and export work
    with no provider reachable, and a question nothing can answer waits and is answered
    when one returns. Import earlier conversations with `standby import chatgpt|claude`.
    """
    from standby.personal import choose_plan
    from standby.personal import main as run_personal

    if plan_path:
        plan, _ = choose_plan(plan_path, os.environ)
        problem = _exposure_problem(plan, host, plan_path) if plan is not None else None
    else:
        problem = (
            None
            if is_loopback(host)
            else "standby chat without --plan listens on loopback only: pass a plan with "
            "client keys (server.client_keys) to share it"
        )
    if problem:
        raise click.ClickException(problem)
    with _startup_errors(traceback=log_level == "debug"):
        run_personal(
            plan_path,
            host=host,
            port=port,
            data_dir=data_dir,
            open_browser=open_browser,
            log_level=log_level,
        )


@main.group("key")
def key_group() -> None:
    """Client keys for the plan's server.client_keys."""


@key_group.command("hash")
@click.argument("key", required=False, default="-")
def key_hash(key: str) -> None:
    """Print the hashed form of a client KEY, for the plan's server.client_keys.

    Without KEY, or with -, the key is read from standard input: typed without echo on
    a terminal, or piped (one trailing newline is ignored). That keeps it out of the
    shell's history and the process list, where a KEY argument can be seen.

    \b
    standby key hash                             # type or paste the key, then Enter
    printf %s "$CLIENT_KEY" | standby key hash
    standby key hash - < client-key.txt
    """
    from standby.web.asgi import hash_key

    if key == "-":
        key = _read_key()
    problem = _key_problem(key)
    if problem:
        raise click.UsageError(problem)
    click.echo(hash_key(key))


def _read_key() -> str:
    if sys.stdin.isatty():
        typed: str = click.prompt(
            "Client key (not shown)", hide_input=True, default="", show_default=False, err=True
        )
        return typed
    text = sys.stdin.read()
    if text.endswith("\n"):  # one line ending, as `echo` or an editor leaves it
        text = text[:-1].removesuffix("\r")
    return text


def _key_problem(key: str) -> str | None:
    if not key:
        return "the key is empty: give it on standard input, or as KEY"
    if "\n" in key or "\r" in key:
        return "the key spans several lines: give one key, on one line"
    if key != key.strip():
        return (
            "the key starts or ends with whitespace, which the gateway never reads as part "
            "of a client's key: give the key alone"
        )
    return None


__all__ = ["main"]


if __name__ == "__main__":  # pragma: no cover
    main()
