"""The probe half of ``bench.server_choice``: what each server bounds, by sending what a
careless or hostile client sends (a 100 MB header, nothing, half a head, trickled heads
and bodies, a short body, idle kept-alive connections, one connection past the cap) to
uvicorn + Standby's limit layer, plain uvicorn and granian in front of a slow sim.

Run through ``python -m bench.server_choice --only probes`` (its docstring says what each
probe does and how the servers are configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.client import STREAM_BODY
from bench.processes import (
    ProcessSet,
    hwm_kib,
    rss_kib,
)
from bench.server_choice import (
    BIG_HEADER,
    PROBE_CAP,
    PROBE_SERVER,
    WRITE,
    plan_for,
    serving_pid,
    start_server,
    start_sim,
)


async def _read_status(reader: asyncio.StreamReader, within: float) -> tuple[str, float | None]:
    """The first status line the server sends (or ``-``) and when it closed (or None)."""
    started = time.monotonic()
    status = "-"
    try:
        async with asyncio.timeout(within):
            line = await reader.readline()
            if line:
                status = line.decode(errors="replace").split(" ", 2)[1]
            while await reader.read(65536):
                pass
        return status, time.monotonic() - started
    except TimeoutError:
        return status, None
    except (ConnectionError, IndexError):
        return status, time.monotonic() - started


async def probe_big_header(port: int, pid: int, within: float) -> dict[str, Any]:
    """Send a 100 MB header; status, bytes the server took, RSS growth of ``pid``."""
    rss0, hwm0 = rss_kib(pid), hwm_kib(pid)
    peak = rss0
    sent = 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    status_task = asyncio.create_task(_read_status(reader, within))
    started = time.monotonic()
    chunk = b"a" * WRITE
    outcome = "sent all"
    try:
        async with asyncio.timeout(within):
            writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ")
            while sent < BIG_HEADER and not status_task.done():
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
                if sent % (4 * 1024 * 1024) == 0:
                    peak = max(peak, rss_kib(pid))
            if not status_task.done():
                writer.write(b"\r\n\r\n")  # end the head: does the server answer it?
                await writer.drain()
    except TimeoutError:
        outcome = "stalled"
    except ConnectionError as exc:
        outcome = type(exc).__name__
    status, closed = await status_task
    elapsed = time.monotonic() - started
    peak = max(peak, rss_kib(pid))
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return {
        "status": status,
        "sent_mib": sent / 2**20,
        "send": outcome,
        "closed_after_s": closed,
        "seconds": elapsed,
        "rss_growth_mib": (peak - rss0) / 1024,
        "hwm_growth_mib": (hwm_kib(pid) - hwm0) / 1024,
    }


async def probe_over_cap(port: int, wait: float) -> str:
    """A head of 80 KiB (over both caps) in one write, then only read: the answer."""
    head = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (80 * 1024)
    return await _send_once(port, wait, head)


async def probe_cap_idle(port: int, held: int, wait: float) -> str:
    """Hold ``held`` idle kept-alive connections, then ask on one more connection."""
    idle = []
    for _ in range(held):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        idle.append(writer)
    result = await _ask(port, wait)
    for writer in idle:
        writer.close()
    return result


async def _ask(port: int, wait: float) -> str:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), wait)
        writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), wait)
        answer = line.decode(errors="replace").split(" ", 2)[1] if line else "closed"
        writer.close()
        return f"{answer} after {time.monotonic() - started:.1f}s"
    except TimeoutError:
        return f"no answer within {wait:.0f}s"
    except ConnectionError as exc:
        return f"{type(exc).__name__} after {time.monotonic() - started:.1f}s"


async def _send_once(port: int, wait: float, data: bytes) -> str:
    """Send ``data`` (maybe nothing), then wait: status if any, and when the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if data:
        writer.write(data)
        await writer.drain()
    status, closed = await _read_status(reader, wait)
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return _outcome(status, closed, wait)


def _outcome(status: str, closed: float | None, wait: float) -> str:
    if closed is None:
        return f"open after {wait:.0f}s" + (f" (got {status})" if status != "-" else "")
    return f"{status}, closed at {closed:.1f}s"


async def _idle_after_answer(port: int, wait: float) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await asyncio.wait_for(reader.readexactly(length), 5)
    started = time.monotonic()
    try:
        async with asyncio.timeout(wait):
            while await reader.read(65536):
                pass
        result = f"{head.split()[1].decode()}, then closed {time.monotonic() - started:.1f}s idle"
    except TimeoutError:
        result = f"open after {wait:.0f}s idle"
    except ConnectionError:
        result = f"reset {time.monotonic() - started:.1f}s idle"
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return result


async def probe_deadlines(port: int, wait: float) -> dict[str, str]:
    """Slow clients, all at once, each on its own connection."""
    post = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    cases = {
        "sends nothing": _send_once(port, wait, b""),
        "half a head": _send_once(port, wait, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n"),
        "head, 1 line/0.5s": _trickle(
            port, wait, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n"
        ),
        "body 10 of 1000 B": _send_once(port, wait, post + b'{"model":"'),
        "body 1 B/0.5s": _trickle(port, wait, post, b" "),
        "idle keep-alive": _idle_after_answer(port, wait),
    }
    results = await asyncio.gather(*cases.values())
    return dict(zip(cases, results, strict=True))


async def _trickle(port: int, wait: float, first: bytes, each: bytes) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    status_task = asyncio.create_task(_read_status(reader, wait))
    writer.write(first)
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(wait):
            while not status_task.done():
                await asyncio.sleep(0.5)
                writer.write(each)
                await writer.drain()
    status, closed = await status_task
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return _outcome(status, closed, wait)


async def probe_cap(port: int, held: int, wait: float) -> str:
    """Hold ``held`` streaming requests open, then ask on one more connection."""
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(STREAM_BODY), STREAM_BODY)
    )
    streams = []
    for _ in range(held):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        streams.append((reader, writer))
    for reader, _writer in streams:  # every stream has begun
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    result = await _ask(port, wait)
    for _reader, writer in streams:
        writer.close()
    return result


async def run_probes(wait: float) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="standby-server-choice-") as scratch:
        with ProcessSet(Path(scratch)) as procs:
            upstream = await start_sim(procs, 0.5)  # streams last ~10 s
            plan = plan_for(upstream, PROBE_SERVER)
            for variant in ("uvicorn+limits", "uvicorn-plain", "granian", "granian-defaults"):
                proc, port = await start_server(procs, variant, plan, probe=True)
                pid = serving_pid(proc.pid)
                big = await probe_big_header(port, pid, 60.0)
                print(f"{variant}: 100 MB header: {big}", flush=True)
                deadlines = await probe_deadlines(port, wait)
                print(f"{variant}: deadlines: {deadlines}", flush=True)
                over = await probe_over_cap(port, wait)
                held = PROBE_CAP
                cap = await probe_cap(port, held, wait)
                await asyncio.sleep(1.0)  # the held streams' slots are freed
                cap_idle = await probe_cap_idle(port, held, wait)
                print(
                    f"{variant}: 80 KiB head: {over}; 9th connection while 8 streams: {cap}; "
                    f"while 8 idle: {cap_idle}",
                    flush=True,
                )
                found[variant] = {
                    "big_header": big,
                    "over_cap": over,
                    "deadlines": deadlines,
                    "cap": cap,
                    "cap_idle": cap_idle,
                }
                procs.stop(proc)
    return found


def report_probes(found: dict[str, dict[str, Any]]) -> None:
    names = list(found)
    rows: list[tuple[str, list[str]]] = []

    def big(v: dict[str, Any]) -> str:
        b = v["big_header"]
        return (
            f"{b['status']} after {b['sent_mib']:.2f} MiB sent ({b['send']}); "
            f"RSS +{b['rss_growth_mib']:.1f} MiB"
        )

    rows.append(("100 MB header", [big(found[n]) for n in names]))
    rows.append(("80 KiB head, then read", [found[n]["over_cap"] for n in names]))
    for case in next(iter(found.values()))["deadlines"]:
        rows.append((case, [found[n]["deadlines"][case] for n in names]))
    rows.append(("9th conn., 8 streams open", [found[n]["cap"] for n in names]))
    rows.append(("9th conn., 8 idle kept-alive", [found[n]["cap_idle"] for n in names]))
    print("\n| probe | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for label, cells in rows:
        print(f"| {label} | " + " | ".join(cells) + " |")


# throughput
