"""``standby drill``: rehearse the plan against a running gateway — a fault injected
inside Standby's provider layer (the real provider is never touched), the real path from
detection to notification, and a report with a pass/fail verdict against the plan's
``drills.objectives``.

With ``--traffic generated`` the command sends its own requests through the gateway
while the fault lasts (``--rate`` a second, half of them streamed); with ``live`` only
the gateway's own traffic meets the fault (``--share`` of the attempts on the target).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import click

from standby.drills.faults import FAULTS
from standby.ops.incidents_cli import Admin, _token, _url
from standby.plan.values import parse_duration

POLL = 1.0  # seconds between two looks at the drill
PROMPT = [{"role": "user", "content": "Standby drill: please answer in a few words."}]


async def _traffic(
    base: str, key: str, routes: list[str], rate: float, seconds: float
) -> dict[str, int]:
    """Requests through the gateway, ``rate`` a second for ``seconds``; what they met."""
    counts = {"sent": 0, "answered": 0, "failed": 0}
    headers = {"authorization": f"Bearer {key or 'standby-drill'}"}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:

        async def one(n: int) -> None:
            body = {"model": routes[n % len(routes)], "messages": PROMPT, "stream": n % 2 == 1}
            counts["sent"] += 1
            try:
                async with session.post(f"{base}/v1/chat/completions", json=body) as resp:
                    text = await resp.text()
                    good = resp.status == 200 and (not body["stream"] or "[DONE]" in text)
            except (aiohttp.ClientError, TimeoutError):
                good = False
            counts["answered" if good else "failed"] += 1

        tasks = []
        started = time.monotonic()
        total = max(1, round(rate * seconds))
        for n in range(total):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return counts


@click.group("drill", invoke_without_command=True)
@click.pass_context
@_url
@_token
@click.option("--target", help="provider/model (or a whole provider) to fault.")
@click.option("--fault", type=click.Choice(FAULTS), help="What the target does.")
@click.option("--duration", default="1m", show_default=True, help="How long: 30s, 5m…")
@click.option(
    "--share",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Of the attempts on the target, the share that meets the fault.",
)
@click.option(
    "--traffic",
    type=click.Choice(["generated", "live"]),
    default="generated",
    show_default=True,
    help="generated: this command sends requests meanwhile; live: the gateway's own.",
)
@click.option("--rate", type=click.FloatRange(0.1, 50), default=2.0, show_default=True)
@click.option(
    "--key", envvar="STANDBY_API_KEY", default="", help="A client key, when the gateway needs one."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "html", "json"]),
    default="markdown",
    show_default=True,
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report here.")
def drill_command(
    ctx: click.Context,
    url: str,
    token: str,
    target: str | None,
    fault: str | None,
    duration: str,
    share: float,
    traffic: str,
    rate: float,
    key: str,
    fmt: str,
    output: str | None,
) -> None:
    """Rehearse the plan: inject FAULT on TARGET inside Standby for DURATION, let
    detection, failover, incidents and notifications run (marked "[DRILL]"; the public
    status page shows nothing), then print the verdict against the plan's
    drills.objectives and write the report. Exit status 0: passed; 1: failed.

    \b
    standby drill --target openai/gpt-4o-mini --fault outage --duration 2m
    standby drill --target openai --fault cut --share 0.2 --traffic live -o drill.html --format html
    standby drill list
    """
    if ctx.invoked_subcommand is not None:
        return
    if not target or not fault:
        raise click.UsageError("--target and --fault are required (or: standby drill list)")
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--duration") from None
    admin = Admin(url, token)
    body = {"target": target, "fault": fault, "duration": seconds, "share": share}
    drill: dict[str, Any] = admin.call("POST", "/standby/drills", body)
    click.echo(f"drill {drill['id']}: {fault} on {target} for {seconds:g} s", err=True)
    if traffic == "generated":
        if not drill["routes"]:
            raise click.ClickException(f"no route of the plan uses {target}: no traffic to send")
        counts = asyncio.run(_traffic(url.rstrip("/"), key, drill["routes"], rate, seconds))
        click.echo(
            f"sent {counts['sent']} requests: {counts['answered']} answered, "
            f"{counts['failed']} failed",
            err=True,
        )
    deadline = time.monotonic() + seconds + 600.0
    while drill["state"] in ("running", "settling") and time.monotonic() < deadline:
        time.sleep(POLL)
        drill = admin.call("GET", f"/standby/drills/{drill['id']}")
    if drill["state"] != "done":
        raise click.ClickException(f"drill {drill['id']} {drill['state']}: {drill.get('error')}")
    verdict = drill["verdict"] or {"passed": True, "checks": []}
    for check in verdict["checks"]:
        click.echo(
            f"  {'pass' if check['passed'] else 'FAIL'}  {check['objective']}: {check['why']}"
        )
    if not verdict["checks"]:
        click.echo("  no objective set (drills.objectives in the plan): nothing judged")
    if output:
        report = _report(url, token, drill["id"], fmt)
        Path(output).write_text(report, encoding="utf-8")
        click.echo(f"report: {output}", err=True)
    click.echo(f"drill {drill['id']}: {'PASSED' if verdict['passed'] else 'FAILED'}")
    if not verdict["passed"]:
        raise click.exceptions.Exit(1)


def _report(url: str, token: str, drill_id: str, fmt: str) -> str:
    import urllib.request

    request = urllib.request.Request(
        f"{url.rstrip('/')}/standby/drills/{drill_id}/report?format={fmt}"
    )
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.read().decode("utf-8"))


@drill_command.command("list")
@_url
@_token
def drill_list(url: str, token: str) -> None:
    """Drills run so far, newest first: this gateway's, and those its journal kept
    (scheduled ones included), with their verdicts."""
    drills = Admin(url, token).call("GET", "/standby/drills")["data"]
    if not drills:
        click.echo("No drill yet.")
        return
    for drill in drills:
        verdict = drill.get("verdict") or {}
        outcome = (
            drill["state"]
            if drill["state"] != "done"
            else ("passed" if verdict.get("passed", True) else "FAILED")
        )
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(drill["started_at"]))
        how = " (scheduled)" if drill.get("scheduled") else ""
        click.echo(
            f"{drill['id']}  {started} UTC  {drill['fault']:<6} on {drill['target']}  "
            f"{drill['duration']:g} s  {outcome}{how}"
        )
