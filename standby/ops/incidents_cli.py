"""``standby incidents …`` and ``standby status``: a running gateway's incidents and live
health, through its admin API (``--url``, ``--token`` or ``STANDBY_URL`` and
``STANDBY_ADMIN_TOKEN``).  ``standby notify test`` sends a test message from the plan."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Column, Table

_TIMEOUT = 10.0


class Admin:
    """The admin API of the gateway at ``url``."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        if self.token:
            request.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise click.ClickException(_error(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise click.ClickException(
                f"cannot reach Standby at {self.url} ({exc}); is `standby serve` running? "
                "(--url or STANDBY_URL)"
            ) from None


def _error(exc: urllib.error.HTTPError) -> str:
    try:
        message = json.loads(exc.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = exc.reason
    return f"HTTP {exc.code}: {message}"


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_url = click.option(
    "--url",
    envvar="STANDBY_URL",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="The gateway (env STANDBY_URL).",
)
_token = click.option(
    "--token",
    envvar="STANDBY_ADMIN_TOKEN",
    default="",
    help="The plan's admin token (env STANDBY_ADMIN_TOKEN).",
)


@click.group("incidents")
def incidents_group() -> None:
    """Standby's incidents: list, show, open, update, acknowledge, resolve."""


@incidents_group.command("list")
@_url
@_token
@click.option("--open", "open_only", is_flag=True, help="Only incidents not resolved yet.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def incidents_list(url: str, token: str, open_only: bool, limit: int, as_json: bool) -> None:
    """Incidents, newest first."""
    query = f"?limit={limit}" + ("&open=true" if open_only else "")
    found = Admin(url, token).call("GET", f"/standby/incidents{query}")["data"]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    table = Table("status", "severity", "component", "title", "opened", "resolved")
    table.columns.insert(0, Column("id", no_wrap=True))
    for row in found:
        table.add_row(
            row["id"],
            row["status"],
            row["severity"],
            row["component"],
            row["title"],
            _when(row["opened_at"]),
            _when(row["resolved_at"]),
        )
    Console().print(table if found else "No incidents.")


@incidents_group.command("show")
@_url
@_token
@click.argument("incident_id")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def incidents_show(url: str, token: str, incident_id: str, as_json: bool) -> None:
    """One incident with its timeline."""
    row = Admin(url, token).call("GET", f"/standby/incidents/{incident_id}")
    if as_json:
        click.echo(json.dumps(row, indent=2))
        return
    console = Console()
    console.print(f"[bold]{row['title']}[/bold]  ({row['id']})")
    console.print(
        f"{row['status']} · {row['severity']} · {row['component']} · opened "
        f"{_when(row['opened_at'])}" + (" · muted (maintenance)" if row["muted"] else "")
    )
    table = Table("at", "event", "what")
    for event in row["timeline"]:
        table.add_row(_when(event["at"]), event["kind"], event["message"])
    console.print(table)


@incidents_group.command("open")
@_url
@_token
@click.argument("component")
@click.argument("title")
@click.option("--severity", type=click.Choice(["major", "minor"]), default="major")
@click.option("--message", default="", help="The first update.")
def incidents_open(
    url: str, token: str, component: str, title: str, severity: str, message: str
) -> None:
    """Open an incident by hand (COMPONENT: what is affected, e.g. a route's name)."""
    body = {"component": component, "title": title, "severity": severity, "message": message}
    row = Admin(url, token).call("POST", "/standby/incidents", body)
    click.echo(row["id"])


@incidents_group.command("update")
@_url
@_token
@click.argument("incident_id")
@click.argument("message")
@click.option(
    "--status", type=click.Choice(["investigating", "identified", "monitoring", "resolved"])
)
def incidents_update(
    url: str, token: str, incident_id: str, message: str, status: str | None
) -> None:
    """Add an update to an incident's timeline (and change its status)."""
    body: dict[str, Any] = {"message": message}
    if status:
        body["status"] = status
    Admin(url, token).call("POST", f"/standby/incidents/{incident_id}/update", body)
    click.echo(f"updated {incident_id}")


@incidents_group.command("ack")
@_url
@_token
@click.argument("incident_id")
@click.option("--by", default="", help="Who acknowledges it.")
def incidents_ack(url: str, token: str, incident_id: str, by: str) -> None:
    """Acknowledge an incident: later escalation steps are not sent."""
    Admin(url, token).call("POST", f"/standby/incidents/{incident_id}/ack", {"by": by})
    click.echo(f"acknowledged {incident_id}")


@incidents_group.command("publish")
@_url
@_token
@click.argument("incident_id")
@click.option("--by", default="", help="Who publishes it.")
def incidents_publish(url: str, token: str, incident_id: str, by: str) -> None:
    """Put an incident on the public status page now, with its updates (when the plan's
    escalation has no `publish: status-page` step, incidents wait for this)."""
    Admin(url, token).call("POST", f"/standby/incidents/{incident_id}/publish", {"by": by})
    click.echo(f"published {incident_id} on the status page")


@incidents_group.command("resolve")
@_url
@_token
@click.argument("incident_id")
@click.option("--message", default="", help="The closing update.")
def incidents_resolve(url: str, token: str, incident_id: str, message: str) -> None:
    """Resolve an incident by hand."""
    Admin(url, token).call(
        "POST", f"/standby/incidents/{incident_id}/resolve", {"message": message}
    )
    click.echo(f"resolved {incident_id}")


def status_view(status: dict[str, Any]) -> Group:
    """The live view: a table of targets, then the open incidents."""
    targets = Table(
        Column("target", no_wrap=True),
        "breaker",
        "judgement",
        "success",
        "p50",
        "p99",
        "TTFB p50",
        "official",
    )
    official = status.get("official", {})
    for key, target in status["targets"].items():
        fast = target["fast"]
        success = "-" if not fast["events"] else f"{100 * (1 - fast['error_rate']):.1f} %"
        provider = key.partition("/")[0]
        page = official.get(provider, {})
        targets.add_row(
            key,
            target["breaker"],
            target.get("judgement", "unknown"),
            f"{success} of {fast['events']}",
            _ms(fast["latency_p50_ms"]),
            _ms(fast["latency_p99_ms"]),
            _ms(fast["ttfb_p50_ms"]),
            page.get("indicator", "-"),
        )
    incidents = Table(Column("incident", no_wrap=True), "status", "component", "title", "opened")
    for row in status["incidents"]:
        incidents.add_row(
            row["id"], row["status"], row["component"], row["title"], _when(row["opened_at"])
        )
    parts: list[Any] = [targets]
    parts.append(incidents if status["incidents"] else "No open incidents.")
    return Group(*parts)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


@click.command("status")
@_url
@_token
@click.option("--watch", is_flag=True, help="Keep refreshing (Ctrl-C to stop).")
@click.option("--every", type=click.FloatRange(0.5, 60), default=2.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The raw JSON of /standby/status.")
def status_command(url: str, token: str, watch: bool, every: float, as_json: bool) -> None:
    """Each target's breaker, success rate, latency and official state; open incidents."""
    admin = Admin(url, token)
    if as_json:
        click.echo(json.dumps(admin.call("GET", "/standby/status"), indent=2))
        return
    if not watch:
        Console().print(status_view(admin.call("GET", "/standby/status")))
        return
    with Live(status_view(admin.call("GET", "/standby/status")), auto_refresh=False) as live:
        try:
            while True:
                time.sleep(every)
                live.update(status_view(admin.call("GET", "/standby/status")), refresh=True)
        except KeyboardInterrupt:
            return


@click.group("notify")
def notify_group() -> None:
    """Notification channels of the plan."""


@notify_group.command("test")
@click.argument("channel")
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="The plan that names the channel.",
)
def notify_test(channel: str, plan_path: str) -> None:
    """Send a test message to CHANNEL and say whether it was delivered."""
    from standby.errors import PlanError
    from standby.notify.channels import build_all
    from standby.notify.delivery import Delivery
    from standby.notify.dispatcher import Dispatcher
    from standby.plan.load import load_plan

    try:
        plan = load_plan(plan_path, os.environ)
        if channel not in plan.notify.channels:
            known = ", ".join(sorted(plan.notify.channels)) or "none"
            raise click.ClickException(f"the plan has no channel {channel!r} (channels: {known})")
        channels = build_all(plan.notify)
    except PlanError as error:
        raise click.ClickException(str(error)) from None

    async def send() -> Delivery:
        dispatcher = Dispatcher(plan.notify, channels, time.time, lambda *_: None)
        try:
            return await dispatcher.send_test(channel)
        finally:
            await dispatcher.stop()

    delivery = asyncio.run(send())
    if not delivery.ok:
        raise click.ClickException(
            f"{channel}: not delivered after {delivery.attempts} attempt(s): {delivery.error}"
        )
    click.echo(f"{channel}: delivered ({delivery.attempts} attempt(s))")
