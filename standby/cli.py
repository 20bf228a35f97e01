"""The ``standby`` command line: serve, demo, plan check, sim, key hash."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import click

from standby import __version__
from standby.errors import PlanError
from standby.plan.defaults import default_plan
from standby.plan.load import load_plan
from standby.plan.model import Plan


class _Commands(click.Group):
    """The CLI, with the journal commands imported only when one of them runs (they pull
    in SQLAlchemy and rich, which ``serve`` with the journal off never needs)."""

    lazy = {"export": "export_command", "backup": "backup_command", "journal": "journal_group"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            from standby import journal_cli

            command: click.Command = getattr(journal_cli, self.lazy[name])
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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The downtime plan (YAML). Without it, a plan is built from the provider "
    "keys in the environment (OPENAI_API_KEY first).",
)
@click.option("--host", default=None, help="Address to bind (default: the plan's, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default: the plan's, 8080).")
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(plan_path: str | None, host: str | None, port: int | None, log_level: str) -> None:
    """Run the gateway: an OpenAI-compatible API in front of the plan's providers."""
    from standby.web.serve import run_server

    plan, described = _load(plan_path)
    host = host or plan.server.host
    port = plan.server.port if port is None else port
    if not _is_loopback(host) and not plan.server.client_keys:
        raise click.ClickException(
            f"refusing to bind {host} without client keys: anyone could spend your provider "
            "credit. Add server.client_keys to the plan (see `standby key hash`)."
        )
    for line in described:
        click.echo(line, err=True)
    data_dir = Path(plan_path).resolve().parent if plan_path else Path.cwd()
    run_server(plan, host=host, port=port, log_level=log_level, data_dir=data_dir)


@main.group("plan")
def plan_group() -> None:
    """Work with downtime plan files."""


@plan_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
def plan_check(path: str) -> None:
    """Validate a plan file; errors name the file, line and key."""
    plan, _ = _load(path)
    click.echo(f"{path}: ok — {len(plan.providers)} providers, {len(plan.routes)} routes")
    for name, route in plan.routes.items():
        tiers = " → ".join(" | ".join(ref.target for ref in tier) for tier in route.tier_list())
        click.echo(f"  {name}: {tiers}")


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
    from standby.providers.sim import run_sim

    run_sim(host, port, name, words, chunk_delay)


@main.command()
@click.option("--port", type=int, default=8080, show_default=True, help="Gateway port.")
@click.option(
    "--once", is_flag=True, help="Run the scripted outage, then exit (no server left running)."
)
def demo(port: int, once: bool) -> None:
    """Two simulated providers behind the gateway, a scripted outage, the live failover."""
    from standby.demo import run_demo

    sys.exit(run_demo(port=port, keep_serving=not once))


@main.group("key")
def key_group() -> None:
    """Client keys for the plan's server.client_keys."""


@key_group.command("hash")
@click.argument("key")
def key_hash(key: str) -> None:
    """Print the hashed form of a client KEY to put in server.client_keys."""
    from standby.web.asgi import hash_key

    click.echo(hash_key(key))


__all__ = ["main"]


if __name__ == "__main__":  # pragma: no cover
    main()
