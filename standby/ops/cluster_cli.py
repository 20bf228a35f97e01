"""``standby cluster status``: the replicas of a gateway that share state through Redis,
as any one of them sees it."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from standby.ops.incidents_cli import Admin, _token, _url


@click.group("cluster")
def cluster_group() -> None:
    """Replicas sharing breaker states and the singleton jobs' lease (state.url)."""


@cluster_group.command("status")
@_url
@_token
@click.option("--json", "as_json", is_flag=True, help="The raw JSON of /standby/cluster.")
def cluster_status(url: str, token: str, as_json: bool) -> None:
    """The replicas (id, version, address, last seen, journal), who holds the lease of
    the singleton jobs, and whether the replicas agree on the open breakers."""
    view: dict[str, Any] = Admin(url, token).call("GET", "/standby/cluster")
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    console = Console()
    lease = view["lease"]
    replicas = Table("replica", "version", "address", "pid", "last seen", "journal", "lease")
    for r in view["replicas"]:
        journal = r.get("journal") or {}
        replicas.add_row(
            str(r.get("replica")),
            str(r.get("version", "-")),
            str(r.get("address", "-")),
            str(r.get("pid", "-")),
            f"{r['last_seen_s']:.1f} s ago" + ("" if r["alive"] else " (gone)"),
            "-"
            if not journal
            else f"{'up' if journal.get('db_up') else 'DOWN'}, "
            f"{journal.get('lag_bytes') or 0:,} B behind",
            "holds it" if r.get("replica") == lease["holder"] else "",
        )
    console.print(replicas)
    console.print(
        f"Lease: {lease['holder'] or 'nobody'}"
        + (f", token {lease['token']}" if lease["token"] is not None else "")
        + (f", {lease['expires_in_s']} s left" if lease["expires_in_s"] is not None else "")
    )
    if not view["breakers"]:
        console.print("No breaker open anywhere.")
        return
    breakers = Table("target", "opened by", "open for", "replicas skipping it", "agree")
    for target, b in sorted(view["breakers"].items()):
        breakers.add_row(
            target,
            str(b["opened_by"]),
            f"{b['open_for_s']} s",
            ", ".join(b["replicas_skipping"]) or "-",
            "yes" if b["agree"] else "NO",
        )
    console.print(breakers)
