"""The status page benchmark, part 2's profile: py-spy on the gateway while visitors
flood the page and the API's traffic runs, its samples summed by activity and function."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from bench import client, journal_rig
from bench import statuspage_visitors as crowd
from bench.load import open_loop
from bench.statuspage_settings import PY_SPY, Settings

if TYPE_CHECKING:
    from bench.statuspage_flood import Bed


MARKERS = (  # (what, function, file): a sample counts for the first marker on its stack
    ("HTML page: jinja2 render", "render", "statuspage/html.py"),
    ("ETag (sha256) and response", "cached", "statuspage/caching.py"),
    ("page view: model.build (90-day histories)", "build", "statuspage/model.py"),
    ("page view: queries, rest of PageSource.view", "view", "statuspage/source.py"),
    ("API documents (dicts + orjson)", "serve", "statuspage/api.py"),
    ("chat completions (the API)", "chat", "web/openai_api.py"),
    ("HTTP server and event loop (uvicorn, asyncio)", "", "uvicorn/"),
)
# frames on (nearly) every stack of the gateway's main thread: not worth listing
ROOT_FRAMES = ("cli.py", "web/serve.py", "web/app.py", "web/access_log.py", "(standby)")


def py_spy() -> str | None:
    for candidate in PY_SPY:
        if candidate is not None and Path(candidate).exists():
            return str(candidate)
    return None


async def profile(session: aiohttp.ClientSession, bed: Bed, s: Settings) -> dict[str, Any] | None:
    """py-spy on the gateway while the flood and the API traffic run."""
    spy = py_spy()
    if spy is None:
        return None
    output = bed.workdir / "profile.txt"
    visitors = crowd.Visitors(rate=s.flood_rate, revalidate=s.revalidate)
    seconds = s.profile_seconds
    wrk = await crowd.start_wrk(bed, visitors, seconds + 3.0, s.flood_connections, "profile")
    await asyncio.sleep(1.0)
    argv = [
        "taskset",
        "-c",
        journal_rig.LOAD_CPUS,
        spy,
        "record",
        "--pid",
        str(bed.gateway.pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "200",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    spying = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        await open_loop(
            lambda t: client.chat(session, bed.gateway.chat_url, t),
            s.api_rate,
            seconds,
            request_timeout=30.0,
        )
        out, _ = await crowd.wait_process(spying, seconds + 30.0)
    finally:
        if spying.returncode is None:
            spying.kill()
            await spying.wait()
    await crowd.finish_wrk(wrk, seconds + 3.0)
    if not output.exists():
        return {"error": out.decode(errors="replace")[-500:]}
    return summarize_profile(output.read_text())


def summarize_profile(raw: str) -> dict[str, Any]:
    """Shares of the samples (py-spy's raw format: ``frame;frame;… count``) by activity
    (``MARKERS``), by function on the stack (standby's, jinja2's) and by leaf function."""
    by_marker: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    leaf: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        what = "other"
        for label, function, file in MARKERS:
            if any(file in f[1] and function in ("", f[0].rsplit(".", 1)[-1]) for f in frames):
                what = label
                break
        by_marker[what] = by_marker.get(what, 0) + count
        for name in {f"{f[0]} ({f[1]})" for f in frames if _listed(f[1])}:
            inclusive[name] = inclusive.get(name, 0) + count
        name = f"{frames[-1][0]} ({frames[-1][1]})"
        leaf[name] = leaf.get(name, 0) + count

    def shares(found: dict[str, int], top: int) -> list[tuple[str, float]]:
        ranked = sorted(found.items(), key=lambda kv: -kv[1])[:top]
        return [(name, count / total) for name, count in ranked] if total else []

    return {
        "samples": total,
        "by_activity": shares(by_marker, len(MARKERS) + 1),
        "inclusive": shares(inclusive, 15),
        "leaf": shares(leaf, 12),
    }


def _frame(text: str) -> tuple[str, str]:
    """``function (path/file.py:12)`` → (function, short path without the line)."""
    function, _, where = text.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for anchor in ("/standby/", "/site-packages/", "/lib/python3"):
        if anchor in path:
            path = path.split(anchor, 1)[1]
            break
    return function, path


def _listed(path: str) -> bool:
    """Whether a frame of this file is worth listing: standby's or jinja2's, not a root."""
    if any(root in path for root in ROOT_FRAMES):
        return False
    return path.startswith(("statuspage/", "web/", "journal/", "jinja2/", "standby/"))
