"""``standby demo``: a scripted outage, failed over live, with no provider key needed.

Two simulated providers (``primary`` and ``backup``) run in this process, the gateway in
front of them on 127.0.0.1, and a client using the official ``openai`` SDK streams
answers while ``standby.demo_script.PHASES`` breaks the primary in several ways. Each
phase is shown live on a terminal (a plain table per phase in CI logs), then a summary.
Afterwards the gateway keeps serving until Ctrl-C, unless ``--once`` was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import logging
import signal
import socket
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from aiohttp import web
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from standby import demo_script as script
from standby.plan.model import Plan
from standby.sim import SimProvider
from standby.web.app import StandbyApp
from standby.web.serve import uvicorn_config

COLOURS = {"primary": "cyan", "backup": "magenta"}
INTERRUPTED = 130  # exit code after Ctrl-C during the scripted part, as shells report it


def run_demo(port: int, keep_serving: bool) -> int:
    """Run the demo on 127.0.0.1:``port`` (0: any free port); returns the exit code.

    0 when every request was answered completely and no stream broke (and, when
    ``keep_serving``, after a clean Ctrl-C/SIGTERM shutdown), 1 otherwise, 130 when
    interrupted during the scripted part.
    """
    console = Console(highlight=False)
    if importlib.util.find_spec("openai") is None:
        console.print(
            "[red]standby demo drives the gateway with the official openai SDK, "
            "which is not installed here:[/] pip install openai"
        )
        return 1
    if not console.is_terminal:  # CI logs: wide enough for the summary table on one line each
        console.width = max(console.width, 100)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_demo(console, port, keep_serving))
    return uvloop.run(_demo(console, port, keep_serving))


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the demo owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def _gateway(plan: Plan, port: int, data_dir: Path) -> AsyncIterator[int]:
    """Serve ``plan`` on ``port`` (a free one if taken) in this loop, journaling in
    ``data_dir``; yields the bound port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:  # taken: any free port (a failed bind leaves the socket unbound)
        sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    app = StandbyApp(plan, data_dir=data_dir)
    config = uvicorn_config(app, host="127.0.0.1", port=port, log_level="warning")
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(2000):  # 10 s at most
            if server.started or task.done():
                break
            await asyncio.sleep(0.005)
        if not server.started:
            raise RuntimeError("the gateway did not start")
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, SystemExit):
            await asyncio.wait_for(task, timeout=5)
        sock.close()


async def _demo(console: Console, port: int, keep_serving: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    tap, log, stderr = script.LogTap(), logging.getLogger("standby"), logging.StreamHandler()
    stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(tap)  # the scripted part shows the gateway's log in the phase panels
    try:
        async with contextlib.AsyncExitStack() as stack:
            import openai  # optional at import time: run_demo checks that it is installed

            primary = await stack.enter_async_context(SimProvider("primary", chunk_delay=0.03))
            backup = await stack.enter_async_context(SimProvider("backup", chunk_delay=0.03))
            receiver = await stack.enter_async_context(_receiver())
            plan = Plan.model_validate(
                script.demo_plan(primary.base_url, backup.base_url, receiver.url)
            )
            # the journal (stored completions, previous_response_id) lives as long as the
            # demo: the directory is removed after the gateway has stopped
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="standby-demo-")))
            bound = await stack.enter_async_context(_gateway(plan, port, home))
            if port and bound != port:
                console.print(f"[yellow]Port {port} is taken; the demo uses port {bound}.[/]")
            root = f"http://127.0.0.1:{bound}"
            client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="demo", max_retries=0)
            stack.push_async_callback(client.close)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            console.print(_intro(root, primary, backup))
            scenario = script.Scenario(root, primary, client, session, stop, tap, backup)
            try:
                results = await _play(console, scenario)
            except script.Interrupted:
                console.print("[yellow]Interrupted: stopping the gateway and the providers.[/]")
                return INTERRUPTED
            console.print(_summary(results))
            console.print(await _incidents(session, root, receiver))
            # the reports outlive the demo (its journal goes with it)
            reports = Path(tempfile.gettempdir()) / "standby-reports"
            console.print(await _reports(session, root, reports), soft_wrap=True)
            ok = all((r.failed == 0 or r.total) and r.broken == 0 for r in results)
            if not keep_serving:
                return 0 if ok else 1
            log.removeHandler(tap)
            log.addHandler(stderr)  # while serving, the gateway logs to stderr as usual
            console.print(_banner(root, primary.base_url, home), soft_wrap=True)
            await stop.wait()
            console.print("Stopping the gateway and the simulated providers…")
            return 0
    finally:
        log.removeHandler(tap)
        log.removeHandler(stderr)


async def _play(console: Console, scenario: script.Scenario) -> list[script.PhaseResult]:
    results: list[script.PhaseResult] = []
    for number, phase in enumerate(script.PHASES, 1):
        if phase.after_recovery:
            wait = script.PhaseResult("Primary fixed, breaker recovering", "")
            await scenario.recover(wait)
            results.append(wait)
            console.print(_recovery_line(wait))
        result = script.PhaseResult(f"{number}. {phase.title}", phase.story)
        console.rule(f"[bold]Phase {number}/{len(script.PHASES)} · {phase.title}")
        console.print(phase.story, style="dim")
        if console.is_terminal:
            view = functools.partial(_phase_view, phase, result, live=True)
            with Live(get_renderable=view, console=console, refresh_per_second=8,
                      transient=True):  # fmt: skip
                await scenario.run(phase, result)
        else:
            await scenario.run(phase, result)
        console.print(_phase_view(phase, result, live=False))
        results.append(result)
    return results


class _Receiver:
    """The demo's notification receiver: a webhook endpoint that keeps what it is told."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[dict[str, Any]] = []


@contextlib.asynccontextmanager
async def _receiver() -> AsyncIterator[_Receiver]:
    found = _Receiver("")

    async def hook(request: web.Request) -> web.Response:
        found.messages.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield found
    finally:
        await runner.cleanup()


async def _reports(session: aiohttp.ClientSession, root: str, folder: Path) -> RenderableType:
    """Each incident's post-outage report, as Markdown and HTML in ``folder`` (which
    outlives the demo), and where they are."""
    async with session.get(f"{root}/standby/incidents") as resp:
        listed = (await resp.json())["data"] if resp.status == 200 else []
    lines = []
    for row in listed[:3]:
        texts: dict[Path, str] = {}
        for fmt, suffix in (("markdown", "md"), ("html", "html")):
            url = f"{root}/standby/incidents/{row['id']}/report?format={fmt}"
            async with session.get(url) as resp:
                if resp.status == 200:
                    texts[folder / f"{row['id']}.{suffix}"] = await resp.text()
        if texts:
            await asyncio.to_thread(_write_all, texts)
            lines.append(f"Post-outage report of {row['id']}:")
            lines += [f"  {path}" for path in texts]
    return Text("\n".join(lines) if lines else "No post-outage report: no incident.")


def _write_all(texts: dict[Path, str]) -> None:
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


async def _incidents(
    session: aiohttp.ClientSession, root: str, receiver: _Receiver
) -> RenderableType:
    """The incidents the outage opened, their timelines, and what the receiver was told
    (after waiting, at most 15 s, for the open ones to resolve: probes tell it is over)."""
    for _ in range(60):
        async with session.get(f"{root}/standby/incidents?open=true") as resp:
            if resp.status != 200 or not (await resp.json())["data"]:
                break
        await asyncio.sleep(0.25)
    async with session.get(f"{root}/standby/incidents") as resp:
        listed = (await resp.json())["data"] if resp.status == 200 else []
    parts: list[RenderableType] = []
    for row in listed[:3]:
        async with session.get(f"{root}/standby/incidents/{row['id']}") as resp:
            incident = await resp.json()
        table = Table(
            title=f"Incident {incident['id']}: {incident['title']} ({incident['status']})"
        )
        table.add_column("at", no_wrap=True)
        table.add_column("event")
        table.add_column("what")
        opened = incident["opened_at"]
        for event in incident["timeline"]:
            table.add_row(f"{event['at'] - opened:+.1f} s", event["kind"], event["message"])
        parts.append(table)
    told = Table(title="Notifications received by the demo's webhook (signed)")
    told.add_column("event")
    told.add_column("incident")
    told.add_column("status")
    told.add_column("title")
    for message in receiver.messages:
        told.add_row(message["event"], message["incident_id"], message["status"], message["title"])
    if not listed:
        parts.append(Text("No incident was opened.", style="dim"))
    parts.append(told)
    async with session.get(f"{root}/standby/status") as resp:
        official = (await resp.json()).get("official", {}) if resp.status == 200 else {}
    parts.append(
        Text(f"Your customers' status page: {root}/status (and {root}/status/api/v2/summary.json)")
    )
    for provider, page in sorted(official.items()):
        parts.append(
            Text(
                f"{provider}'s own status page (read every 10 s) last said: {page['indicator']}",
                style="dim",
            )
        )
    return Group(*parts)


def _who(by: Counter[str]) -> Text:
    text = Text()
    for name, count in sorted(by.items(), key=lambda item: -item[1]):
        if text:
            text.append(" · ")
        text.append(f"{name} {count}", style=COLOURS.get(name, "yellow"))
    return text or Text("nobody", style="red")


def _states(states: list[str]) -> Text:
    styles = {"closed": "green", "open": "red", "half_open": "yellow"}
    text = Text()
    for index, state in enumerate(states):
        text.append(" → " if index else "")
        text.append(state, style=styles.get(state, "dim"))
    return text


def _phase_view(phase: script.Phase, result: script.PhaseResult, *, live: bool) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    finished = result.answered + result.failed
    share = f" of {finished} ({result.answered / finished:.0%})" if finished else ""
    flying = f", {result.sent - finished} in flight" if result.sent > finished else ""
    grid.add_row("requests sent", str(result.sent))
    expected = "yellow" if result.total else "red"  # nothing could answer: errors expected
    grid.add_row(
        "answered completely",
        Text(f"{result.answered}{share}{flying}", style="green" if not result.failed else expected),
    )
    grid.add_row("answered by", _who(result.by))
    if result.by["primary→backup"]:
        grid.add_row("continued mid-stream", f"{result.by['primary→backup']} answers")
    grid.add_row("primary received", f"{result.primary_hits} of {result.sent} requests")
    grid.add_row("primary breaker", _states(result.states))
    grid.add_row("slowest answer", f"{result.slowest:.2f} s")
    grid.add_row(
        "broken streams", Text(str(result.broken), style="red" if result.broken else "green")
    )
    if result.error:
        grid.add_row("first failure", Text(result.error[:200], style=expected))
    if result.pages:
        grid.add_row("customers' status page", _pages(result.pages))
    parts: list[RenderableType] = [grid]
    sample = result.sample
    if sample is not None:
        spliced = Text()
        for who, text in sample.parts:
            spliced.append(text, style=f"bold {COLOURS.get(who, 'yellow')}")
        first = len(sample.parts[0][1].split())
        legend = Text.assemble(
            "words 1-",
            str(first),
            " from ",
            ("primary", "cyan"),
            ", ",
            str(first + 1),
            "-",
            str(len(sample.text.split())),
            " from ",
            ("backup", "magenta"),
            ": complete, in one stream with ",
            "one id" if sample.ids == 1 else f"{sample.ids} ids (!)",
        )
        parts += [Text("\nOne answer cut mid-stream, as the client received it:"), spliced, legend]
    if live and result.last is not None:
        parts.append(
            Text(
                f"\nlast answer from {result.last.answered_by} in "
                f"{result.last.seconds:.2f} s: {result.last.text[:60]}…",
                style="dim",
            )
        )
    if result.logs:
        parts.append(Text("\ngateway log: " + "\n             ".join(result.logs), style="dim"))
    clock = f"{result.seconds:.1f} s" + (
        f" / {phase.seconds:.0f} s" if live and not phase.until_back else ""
    )
    return Panel(Group(*parts), title=f"[bold]{phase.title}", subtitle=clock, expand=False)


def _pages(pages: list[tuple[str, str]]) -> Text:
    styles = {"none": "green", "minor": "yellow", "major": "red", "critical": "red"}
    text = Text()
    for index, (indicator, description) in enumerate(pages):
        text.append(" → " if index else "")
        text.append(description, style=styles.get(indicator, "dim"))
    return text


def _recovery_line(result: script.PhaseResult) -> Text:
    closed = result.state == "closed"
    mark = ("✓", "green") if closed else ("!", "yellow")
    return Text.assemble(
        (f"{mark[0]} ", mark[1]),
        "Primary fixed; its breaker ",
        _states(result.states),
        f" in {result.seconds:.1f} s; {result.answered} of {result.sent} "
        "requests answered meanwhile by ",
        _who(result.by),
    )


def _summary(results: list[script.PhaseResult]) -> Table:
    def cells(r: script.PhaseResult) -> list[str]:
        by = r.by
        return [str(n) for n in (r.sent, r.answered, by["primary"], by["backup"],
                                 by["primary→backup"], r.broken)]  # fmt: skip

    total = script.PhaseResult("Total", "")
    for r in results:
        if r.total:
            continue  # nothing could answer there: told apart below
        total.sent, total.answered, total.broken = (
            total.sent + r.sent,
            total.answered + r.answered,
            total.broken + r.broken,
        )
        total.by.update(r.by)
    table = Table(title="Summary", title_style="bold", show_footer=True)
    columns = ("Phase", "Sent", "Answered", "By primary", "By backup", "Spliced", "Broken")
    for column, footer in zip(columns, ["Total", *cells(total)], strict=True):
        table.add_column(column, footer, justify="left" if column == "Phase" else "right")
    for r in results:
        table.add_row(r.title, *cells(r), style=None if r.title[0].isdigit() else "dim")
    sent, answered, broken = total.sent, total.answered, total.broken
    ok = answered == sent and broken == 0
    verdict = (f"✓ {answered / max(sent, 1):.0%} answered, {broken} broken streams: the client "
               "never saw the outage." if ok else
               f"✗ {sent - answered} of {sent} requests not answered completely, {broken} "
               "broken streams.")  # fmt: skip
    for r in results:
        if r.total:
            seen = " → ".join(description for _, description in r.pages) or "?"
            verdict += (
                f"\nWhile both providers were down ({r.title}): {r.failed} clean errors, "
                f"{r.broken} broken streams; the customers' status page said: {seen}."
            )
    table.caption = verdict
    table.caption_style = "bold green" if ok else "bold red"
    return table


def _intro(root: str, primary: SimProvider, backup: SimProvider) -> Panel:
    lines = Text.assemble(
        "Two simulated providers and the Standby gateway, all in this process:\n",
        ("  primary ", "cyan"),
        primary.base_url,
        "\n",
        ("  backup  ", "magenta"),
        backup.base_url,
        "\n",
        ("  Standby ", "bold"),
        f"{root}/v1\n",
        f"Route {script.ROUTE}: primary, then backup. Deadlines: connect 1 s, first token 2 s, "
        "idle 2 s. Breaker: opens after 3 failures, ejects for 2 s (growing to 4 s).\n",
        "A client using the official openai SDK streams answers through Standby while the "
        "primary breaks in several ways.",
    )
    return Panel(lines, title="[bold]Standby demo", expand=False)


def _banner(root: str, primary_url: str, home: Path) -> Group:
    curl = (
        f"curl -N {root}/v1/chat/completions \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f'  -d \'{{"model": "{script.ROUTE}", "stream": true, '
        '"messages": [{"role": "user", "content": "Hello"}]}\''
    )
    python = (
        "from openai import OpenAI\n"
        f'client = OpenAI(base_url="{root}/v1", api_key="demo")\n'
        f'reply = client.chat.completions.create(model="{script.ROUTE}", store=True,\n'
        '    messages=[{"role": "user", "content": "Hello"}])\n'
        "print(reply.choices[0].message.content)\n"
        "print(client.chat.completions.retrieve(reply.id).model)  # stored in the journal\n"
        f'first = client.responses.create(model="{script.ROUTE}", input="Hello")\n'
        f'again = client.responses.create(model="{script.ROUTE}", input="And again?",\n'
        "    previous_response_id=first.id)"
    )
    fault = (
        f"curl -X POST {primary_url.removesuffix('/v1')}/_sim/fault "
        '-d \'{"kind": "error", "status": 503}\''
    )
    return Group(
        Text(f"\nStandby is running at {root}/v1 — try:\n", style="bold green"),
        Text(curl),
        Text("\nor with Python:\n"),
        Text(python),
        Text(
            f"\nBreak the primary yourself:  {fault}\n"
            f"Watch the breakers:          curl {root}/standby/health\n"
            f"Journal (removed at exit):   {home}\n"
            "Press Ctrl-C to stop.",
            style="dim",
        ),
    )
