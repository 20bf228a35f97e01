"""A test bed: two mock upstreams (primary, backup) and a pinned Standby gateway.

The upstreams are either Standby's own simulated provider (``standby sim``) or the shared
harness's Node mock (``mock_upstream.js``, run from where it is).  Both stream 20 content
chunks, ``chunk_delay`` seconds apart, and answer non-streaming requests at once.  The
gateway gets a plan routing ``gpt-4o-mini`` to primary, then backup.
"""

from __future__ import annotations

import functools
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.processes import Proc, ProcessSet, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
STANDBY_BIN = ROOT / ".venv" / "bin" / "standby"
NODE_MOCK = ROOT.parent / "shared" / "harness" / "mock_upstream.js"
MODEL = "gpt-4o-mini"
CHUNKS = 20

PLAN = """\
# written by bench/stack.py for one benchmark run
providers:
  primary: {{kind: openai-compatible, base_url: "{primary}", api_key: "sk-bench"}}
  backup:  {{kind: openai-compatible, base_url: "{backup}", api_key: "sk-bench"}}
timeouts: {{connect: 5s, first_token: 5s, idle: 5s, total: 60s}}
routes:
  {model}: {{targets: ["primary/{model}", "backup/{model}"]}}
"""

CHAT_BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say something reassuring."}]}'
)


@dataclass(frozen=True)
class StackSpec:
    """What to start: which upstream, how slowly it streams, where things run."""

    upstream: str  # "sim" or "node"
    chunk_delay: float  # seconds between streamed content chunks
    gateway_cpus: str = "1"
    load_cpus: str = "0"
    standby_bin: Path = STANDBY_BIN
    node_mock: Path = NODE_MOCK


@dataclass
class Stack:
    """A running test bed; ``direct`` and ``gateway`` are the two base URLs (``…/v1``)."""

    spec: StackSpec
    primary: Proc
    backup: Proc
    gateway: Proc
    direct: str
    gateway_url: str

    @property
    def upstream_pids(self) -> list[int]:
        """PIDs of the two upstream processes."""
        return [self.primary.pid, self.backup.pid]


def upstream_argv(spec: StackSpec, name: str, port: int) -> list[str]:
    """The command line of one upstream."""
    if spec.upstream == "sim":
        return [
            str(spec.standby_bin),
            "sim",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--name",
            name,
            "--words",
            str(CHUNKS),
            "--chunk-delay",
            str(spec.chunk_delay),
        ]
    if spec.upstream == "node":
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("--upstream node needs node on PATH")
        if not spec.node_mock.is_file():
            raise RuntimeError(f"no Node mock at {spec.node_mock}")
        return [
            node,
            str(spec.node_mock),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--name",
            name,
            "--chunks",
            str(CHUNKS),
            "--chunk-delay-ms",
            str(round(spec.chunk_delay * 1000)),
        ]
    raise ValueError(f"unknown upstream {spec.upstream!r} (sim or node)")


async def start_stack(procs: ProcessSet, spec: StackSpec, tag: str) -> Stack:
    """Start primary, backup and the gateway; return once all three answer."""
    ports = {name: free_port() for name in ("primary", "backup", "gateway")}
    bases = {name: f"http://127.0.0.1:{ports[name]}/v1" for name in ports}
    upstreams = []
    for name in ("primary", "backup"):
        proc = procs.start(
            f"{tag}-{name}", upstream_argv(spec, name, ports[name]), cpus=spec.load_cpus
        )
        upstreams.append(proc)
    for proc, name in zip(upstreams, ("primary", "backup"), strict=True):
        models = f"{bases[name]}/models"
        await wait_until(functools.partial(_get_ok, models), 20, f"upstream {name}", proc)
    plan = procs.workdir / f"{tag}-plan.yaml"
    plan.write_text(PLAN.format(primary=bases["primary"], backup=bases["backup"], model=MODEL))
    argv = [
        str(spec.standby_bin),
        "serve",
        "--plan",
        str(plan),
        "--host",
        "127.0.0.1",
        "--port",
        str(ports["gateway"]),
    ]
    gateway = procs.start(f"{tag}-gateway", argv, cpus=spec.gateway_cpus)
    await wait_until(
        lambda: post_ok(f"{bases['gateway']}/chat/completions"), 30, "the gateway", gateway
    )
    return Stack(spec, upstreams[0], upstreams[1], gateway, bases["primary"], bases["gateway"])


def stop_stack(procs: ProcessSet, stack: Stack) -> None:
    """Stop the gateway, then the upstreams."""
    for proc in (stack.gateway, stack.backup, stack.primary):
        procs.stop(proc)


def _get_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


def post_ok(url: str) -> bool:
    """Whether a chat completion posted to ``url`` is answered 200."""
    request = urllib.request.Request(
        url, data=CHAT_BODY, method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return bool(resp.status == 200)
