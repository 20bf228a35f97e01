"""Journal operations (export, backup, retention, admin view, CLI) against real databases.

Shared pieces: a fresh SQLite file or PostgreSQL database per test, the real journal path
(``Journal`` → write-ahead log → ``JournalWriter`` → ``SQLStore``), and a mix of traffic
written through it: chat answers, streams, tool calls, failures, embeddings, a stream
cut off mid-answer.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from standby.journal.events import new_request_id
from standby.journal.journal import Journal
from standby.journal.migrate import migrate
from standby.journal.sql import SQLStore
from standby.journal.wal import WriteAheadLog
from standby.journal.writer import JournalWriter

PG_HOST = "postgresql://postgres@127.0.0.1:5432"
KINDS = ["sqlite", "postgresql"]
_absent: list[str] = []  # why PostgreSQL was found missing, once it was


class Clock:
    """A settable clock for the times the journal records."""

    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database of ``kind``, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'journal.db'}"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


async def create_pg_database() -> str:
    """A new, empty ``standby_test_*`` PostgreSQL database (skips the test without one)."""
    name = f"standby_test_{secrets.token_hex(6)}"
    if _absent:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({_absent[0]})")
    try:
        admin = await _admin()
    except (OSError, asyncpg.PostgresError) as exc:
        _absent.append(str(exc))  # waited once: the rest of the run skips at once
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({exc})")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{PG_HOST}/{name}"


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    assert name.startswith("standby_test_")
    admin = await _admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _admin(patience: float = 30.0) -> asyncpg.Connection:
    """A connection to the server's maintenance database.  Other suites stop and start
    the local server to rehearse outages: wait out such a restart before giving up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        try:
            return await asyncpg.connect(f"{PG_HOST}/postgres", timeout=15)
        except (OSError, asyncpg.CannotConnectNowError) as exc:
            if loop.time() > deadline:
                raise exc
            await asyncio.sleep(0.5)


@dataclass
class Stack:
    """The journal as the gateway runs it; also a ``JournalReader`` for the admin view."""

    store: SQLStore
    journal: Journal
    writer: JournalWriter
    clock: Clock
    written: list[dict[str, Any]] = field(default_factory=list)

    async def flush(self) -> None:
        await self.writer.flush()


@asynccontextmanager
async def journal_stack(
    url: str,
    wal_dir: Path,
    clock: Clock | None = None,
) -> AsyncIterator[Stack]:
    clock = clock or Clock()
    store = SQLStore.from_url(url)
    await migrate(store.engine)
    wal = WriteAheadLog(wal_dir)
    writer = JournalWriter(wal, store, wal_id="test-wal", idle_interval=0.01)
    journal = Journal(wal, clock=clock)
    await writer.start()
    try:
        yield Stack(store, journal, writer, clock)
    finally:
        await writer.stop()
        wal.close()
        await store.close()


def converse(stack: Stack, count: int, *, step: float = 60.0) -> list[dict[str, Any]]:
    """Journal ``count`` requests, ``step`` seconds apart, cycling through six kinds.

    Returns what was sent, per request: ``rid, kind, body, answer, at``.
    """
    sent = []
    for i in range(count):
        stack.clock.now += step
        kind = ("chat", "stream", "failed", "tools", "embeddings", "cut")[i % 6]
        sent.append(_one(stack, i, kind))
    stack.written.extend(sent)
    return sent


def _one(stack: Stack, i: int, kind: str) -> dict[str, Any]:
    journal, rid, at = stack.journal, new_request_id(), stack.clock.now
    messages = [
        {"role": "system", "content": "You are terse | exact."},
        {"role": "user", "content": f"Question {i}: what is 2+{i}?\nÉtape deux ✓"},
    ]
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": messages,
        "metadata": {"user_email": f"user{i}@example.com", "team": "ops"},
    }
    endpoint, answer = "chat", f"It is {2 + i}."
    if kind == "embeddings":
        endpoint, body = "embeddings", {"model": "gpt-4o-mini", "input": f"text {i}"}
    if kind == "tools":
        body["tools"] = [{"type": "function", "function": {"name": "add", "parameters": {}}}]
    stream = kind in ("stream", "cut")
    journal.accepted(
        rid,
        endpoint=endpoint,
        route="gpt-4o-mini",
        model="gpt-4o-mini",
        stream=stream,
        raw_body=orjson.dumps(body),
        metadata=body.get("metadata"),
        store=True,
    )
    attempts = [("primary/gpt-4o-mini", "ok", 0.25)]
    if kind == "failed":
        attempts = [
            ("primary/gpt-4o-mini", "unavailable", 0.1),
            ("backup/gpt-4o-mini", "unavailable", 0.2),
        ]
        error = {"error": {"message": "every target failed", "code": "upstream_unavailable"}}
        stack.clock.now += 0.5
        journal.failed(rid, status=503, response=orjson.dumps(error), attempts=attempts)
        return {"rid": rid, "kind": kind, "body": body, "answer": None, "at": at}
    if stream:
        for word in answer.split(" "):
            journal.delta(rid, word + " ")
        if kind == "cut":  # the gateway died mid-stream: never finished
            return {
                "rid": rid,
                "kind": kind,
                "body": body,
                "answer": None,
                "at": at,
                "sent_text": answer + " ",
            }
    message: dict[str, Any] = {"role": "assistant", "content": answer}
    if kind == "tools":
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2}'},
                }
            ],
        }
    response: dict[str, Any] = {
        "id": f"chatcmpl-{i}",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    if kind == "embeddings":
        response = {"object": "list", "data": [{"embedding": [0.1, 0.2]}]}
    usage = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
    stack.clock.now += 1.5
    journal.completed(
        rid,
        completion_id=f"chatcmpl-{i}",
        provider="primary",
        model="gpt-4o-mini",
        usage=usage,
        attempts=attempts,
        response=response if stream else orjson.dumps(response),
    )
    return {"rid": rid, "kind": kind, "body": body, "answer": message, "at": at}


async def eventually(condition: Callable[[], bool], within: float = 15.0) -> None:
    """Wait until ``condition()`` holds (generous: the machine may be busy)."""
    async with asyncio.timeout(within):
        while True:  # polling: the conditions are plain attributes, not events
            if condition():
                return
            await asyncio.sleep(0.01)


def plan_file(tmp_path: Path, url: str | None, **journal: Any) -> Path:
    """A minimal plan whose journal is at ``url`` (None: the default, beside the plan)."""
    path = tmp_path / "plan.yaml"
    settings = {"url": url, **journal} if url else {"enabled": True, **journal}
    lines = [f"  {key}: {orjson.dumps(value).decode()}" for key, value in settings.items()]
    path.write_text(
        "providers:\n  primary: {base_url: 'http://127.0.0.1:9'}\n"
        "routes:\n  gpt-4o-mini: {targets: [primary/gpt-4o-mini]}\n"
        "journal:\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )
    return path
