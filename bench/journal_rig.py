"""The journal benchmarks' test bed: two mock upstreams and journaling gateways.

Upstreams (``standby sim``, or the harness's Node mock) run on core 0 with the load
generator; each gateway runs on core 1 from a directory of its own, where its plan, its
SQLite journal and its write-ahead log (``standby-wal/``) live.  A gateway can be stopped
and started again on the same directory (``restart``): its log and database are kept.
Everything listens on 127.0.0.1 only; processes are stopped by their process group.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.processes import Proc, ProcessSet, children, cpu_seconds, free_port, wait_until
from bench.stack import MODEL, STANDBY_BIN, StackSpec, _get_ok, _post_ok, upstream_argv

GATEWAY_CPUS, LOAD_CPUS = "1", "0"

# bench/stack.py's plan, with the pools' sizes said (their default changes; with the
# open-files limit they decide how many clients a gateway takes)
PLAN = """\
# written by bench/journal_rig.py for one benchmark run
providers:
  primary: {{kind: openai-compatible, base_url: "{primary}", api_key: "sk-bench",
             max_connections: 1000}}
  backup:  {{kind: openai-compatible, base_url: "{backup}", api_key: "sk-bench",
             max_connections: 1000}}
server: {{max_connections: 10000}}
timeouts: {{connect: 5s, first_token: 5s, idle: 5s, total: 60s}}
routes:
  {model}: {{targets: ["primary/{model}", "backup/{model}"]}}
"""


@dataclass
class Gateway:
    """One gateway: its directory, port and (while it runs) process."""

    name: str
    directory: Path
    port: int
    proc: Proc | None = None
    tree: Path | None = None  # run the standby of this source tree instead of ours

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chat_url(self) -> str:
        return f"{self.base}/v1/chat/completions"

    @property
    def wal_dir(self) -> Path:
        return self.directory / "standby-wal"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid


async def start_upstreams(
    procs: ProcessSet, upstream: str = "sim", chunk_delay: float = 0.005
) -> dict[str, str]:
    """Start primary and backup; their base URLs (``…/v1``) once both answer."""
    spec = StackSpec(upstream, chunk_delay)
    bases = {}
    for name in ("primary", "backup"):
        port = free_port()
        proc = procs.start(name, upstream_argv(spec, name, port), cpus=LOAD_CPUS)
        bases[name] = f"http://127.0.0.1:{port}/v1"
        await wait_until(functools.partial(_get_ok, f"{bases[name]}/models"), 20, name, proc)
    return bases


def make_gateway(
    workdir: Path,
    name: str,
    bases: dict[str, str],
    *,
    journal: bool = True,
    tree: Path | None = None,
) -> Gateway:
    """A gateway's directory and plan (journal on, or ``journal: {enabled: false}``)."""
    directory = workdir / name
    directory.mkdir()
    plan = PLAN.format(primary=bases["primary"], backup=bases["backup"], model=MODEL)
    if not journal:
        plan += "journal: {enabled: false}\n"
    (directory / "plan.yaml").write_text(plan)
    return Gateway(name, directory, free_port(), tree=tree)


async def start(procs: ProcessSet, gateway: Gateway, within: float = 30.0) -> None:
    """Start ``gateway`` pinned to core 1; return once it answers a chat completion."""
    # another tree's standby: python -m from the tree, which comes first on sys.path
    command = [str(STANDBY_BIN.with_name("python")), "-m", "standby.cli"]
    argv = [
        *(command if gateway.tree else [str(STANDBY_BIN)]),
        "serve",
        "--plan",
        str(gateway.directory / "plan.yaml"),
        "--host",
        "127.0.0.1",
        "--port",
        str(gateway.port),
    ]
    cwd = gateway.tree or gateway.directory
    gateway.proc = procs.start(gateway.name, argv, cpus=GATEWAY_CPUS, cwd=cwd)
    await wait_until(
        functools.partial(_post_ok, gateway.chat_url), within, gateway.name, gateway.proc
    )


def stop(procs: ProcessSet, gateway: Gateway) -> None:
    """Stop the gateway (SIGTERM: it drains its journal writer for up to 5 s)."""
    if gateway.proc is not None:
        procs.stop(gateway.proc, grace=10.0)
        gateway.proc = None


async def journal_status(session: aiohttp.ClientSession, gateway: Gateway) -> dict[str, Any]:
    """The gateway's journal status (``/standby/health``)."""
    async with session.get(f"{gateway.base}/standby/health") as resp:
        health: dict[str, Any] = await resp.json()
    journal: dict[str, Any] = health.get("journal") or {}
    return journal


def position(text: str | None) -> tuple[int, int]:
    """A ``segment:offset`` position of the status as a comparable pair."""
    if not text:
        return (0, 0)
    segment, offset = text.split(":")
    return int(segment), int(offset)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and of its running children (the journal's follower)."""
    total = cpu_seconds(pid)
    for child in children(pid):
        try:
            total += cpu_seconds(child)
        except OSError:  # it ended meanwhile
            continue
    return total


def loadavg() -> list[str]:
    """The 1, 5 and 15 minute load averages, recorded at a run's start and end."""
    with open("/proc/loadavg") as handle:
        return handle.read().split()[:3]


def record(
    results: dict[str, Any], out: Path | None, render: Callable[[dict[str, Any]], str]
) -> None:
    """Close a run's results (end load average), print its table, and keep both as
    ``OUT.json`` and ``OUT.md`` when ``out`` is given."""
    results["loadavg_end"] = loadavg()
    text = render(results)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(results, indent=2))
        out.with_suffix(".md").write_text(text)
