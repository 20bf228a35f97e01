"""Nothing lost: a real gateway process killed mid-load (F24), a client leaving a stream
mid-answer with ``server.on_disconnect: finish`` (F21; the default, cancel, is in
``test_client_gone``). Real processes, a real SQLite journal, real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from standby.sim import SimProvider
from standby.testing import running_gateway
from tests.conftest import two_target_plan

STREAMS, PLAIN = 12, 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def gateway_process(plan: Path, port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "standby.cli",
        "serve",
        "--plan",
        str(plan),
        "--port",
        str(port),
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(20), aiohttp.ClientSession() as http:
            while True:  # ready once the journal is migrated and recovery has run
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/standby/health") as r:
                        journal = (await r.json()).get("journal") or {}
                        if journal.get("recovered") is not None:
                            break
                await asyncio.sleep(0.05)
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def one_request(
    http: aiohttp.ClientSession,
    url: str,
    n: int,
    stream: bool,
    seen: dict[str, Any],
    progress: asyncio.Event,
) -> None:
    body = {
        "model": "gpt-4o-mini",
        "stream": stream,
        "metadata": {"test_id": str(n)},
        "messages": [{"role": "user", "content": f"request {n}"}],
    }
    text = ""
    try:
        async with http.post(url, json=body) as resp:
            seen[str(n)] = {"status": resp.status, "text": ""}
            if not stream:
                data = await resp.json()
                seen[str(n)]["text"] = data["choices"][0]["message"]["content"]
                return
            async for line in resp.content:
                if line.startswith(b"data: {"):
                    chunk = json.loads(line[6:])
                    if chunk.get("choices"):
                        text += chunk["choices"][0]["delta"].get("content") or ""
                        seen[str(n)]["text"] = text
                        progress.set()
    except (TimeoutError, aiohttp.ClientError):
        pass  # the gateway died under us: that is the point


async def test_kill_9_under_load_loses_no_accepted_request(tmp_path: Path) -> None:
    async with (
        SimProvider("primary", chunk_delay=0.05) as primary,
        SimProvider("backup", chunk_delay=0.05) as backup,
    ):
        plan = tmp_path / "plan.yaml"
        plan.write_text(json.dumps(two_target_plan(primary, backup)))  # JSON is YAML
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        seen: dict[str, Any] = {}
        async with gateway_process(plan, port) as proc, aiohttp.ClientSession() as http:
            progress = asyncio.Event()
            tasks = [
                asyncio.create_task(one_request(http, url, n, n < STREAMS, seen, progress))
                for n in range(STREAMS + PLAIN)
            ]
            async with asyncio.timeout(20):  # kill once a few streams are mid-answer
                while sum(len(s["text"]) > 20 for s in seen.values()) < 4:
                    await progress.wait()
                    progress.clear()
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            async with asyncio.timeout(20):
                await asyncio.gather(*tasks)
        acknowledged = {n: s for n, s in seen.items() if s["status"] == 200}
        assert acknowledged, "no request got an answer before the kill"
        async with gateway_process(plan, port):  # restart: replay the log, recover
            pass
    rows = {
        json.loads(meta)["test_id"]: (state, content, response)
        for state, content, response, meta in sqlite3.connect(tmp_path / "standby.db").execute(
            "SELECT state, content_sent, response_json, metadata_json FROM requests"
        )
    }
    assert set(acknowledged) <= set(rows), "an acknowledged request is missing"
    states = {state for state, _, _ in rows.values()}
    assert "accepted" not in states and "interrupted" in states
    for n, got in acknowledged.items():
        state, content, response = rows[n]
        if state == "interrupted":  # the journal has at least what the client received
            assert (content or "").startswith(got["text"])
        else:
            assert state == "completed"
            assert got["text"] in json.dumps(json.loads(response))


async def test_a_client_leaving_mid_stream_still_gets_its_answer_journaled(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.chunk_delay = 0.02
    plan = two_target_plan(primary, backup, server={"on_disconnect": "finish"})
    async with running_gateway(plan) as gw:
        service = gw.app.journal_service
        assert service is not None
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{gw.base_url}/chat/completions",
                json={
                    "model": "gpt-4o-mini",
                    "stream": True,
                    "store": True,  # served back as a stored completion
                    "metadata": {"t": "f21"},
                    "messages": [{"role": "user", "content": "hi"}],
                },
            ) as resp,
        ):
            got = 0
            async for line in resp.content:
                got += line.startswith(b"data: {")
                if got >= 3:
                    break  # leave: the connection closes with the session
        async with asyncio.timeout(10):
            while True:  # the gateway finishes the answer upstream, then journals it
                await service.flush()
                items, _ = await service.store.list_completions(metadata={"t": "f21"})
                if items:
                    break
                await asyncio.sleep(0.05)
        answer = items[0].response
        assert answer is not None
        assert answer["choices"][0]["message"]["content"] == primary.expected_text()


@pytest.mark.parametrize("redact", [True])
async def test_redacted_plans_keep_only_hashes(
    primary: SimProvider, backup: SimProvider, redact: bool
) -> None:
    plan = two_target_plan(primary, backup, journal={"redact": redact})
    async with running_gateway(plan) as gw, aiohttp.ClientSession() as http:
        async with http.post(
            f"{gw.base_url}/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "stream": True,
                "messages": [{"role": "user", "content": "secret"}],
            },
        ) as r:
            await r.read()
        service = gw.app.journal_service
        assert service is not None
        await service.flush()
        rows = await service.store.list_requests(limit=5)
    assert rows and all(row.request is None and row.response is None for row in rows)
    assert all(not row.content_sent for row in rows)
