"""``GET /standby/journal`` over HTTP (uvicorn on loopback) against real databases."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request

from standby.errors import JournalUnavailable
from standby.journal.sql import SQLStore
from standby.web.journal_api import JournalReader, journal_routes
from tests.ops import KINDS, Clock, converse, database, journal_stack

TOKEN = "admin-secret"


def check_token(request: Request) -> None:
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), TOKEN.encode()):
        raise HTTPException(401, "This endpoint needs the plan's admin token.")


@asynccontextmanager
async def serving(service: JournalReader, clock: Clock) -> AsyncIterator[aiohttp.ClientSession]:
    app = Starlette(routes=journal_routes(service, authorise=check_token, clock=clock))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with aiohttp.ClientSession(
            f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {TOKEN}"}
        ) as session:
            yield session
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def get(session: aiohttp.ClientSession, **params: Any) -> dict[str, Any]:
    async with session.get("/standby/journal", params=params) as response:
        assert response.status == 200, await response.text()
        data: dict[str, Any] = await response.json()
        return data


@pytest.mark.parametrize("kind", KINDS)
async def test_pages_follow_the_cursor_to_the_end(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path) as url, journal_stack(url, tmp_path / "wal") as stack:
        sent = converse(stack, 23)  # not flushed: the view flushes before it reads
        async with serving(stack, stack.clock) as session:
            pages, cursor = [], None
            while True:
                page = await get(session, limit=10, **({"before": cursor} if cursor else {}))
                pages.append(page["data"])
                cursor = page["next"]
                if cursor is None:
                    break
            exact = await get(session, limit=23)
    assert [len(page) for page in pages] == [10, 10, 3]
    rids = [row["rid"] for page in pages for row in page]
    assert rids == [s["rid"] for s in reversed(sent)]  # newest first, no gaps or repeats
    assert exact["next"] is None and len(exact["data"]) == 23  # no empty page after a full one
    first = pages[0][0]
    assert {
        "rid",
        "received_at",
        "route",
        "model_asked",
        "provider",
        "model",
        "state",
        "attempts",
        "usage",
        "request",
        "response",
    } <= set(first)


async def test_filters_and_bodies(tmp_path: Path) -> None:
    async with database("sqlite", tmp_path) as url, journal_stack(url, tmp_path / "wal") as stack:
        sent = converse(stack, 12, step=3600)
        async with serving(stack, stack.clock) as session:
            failed = await get(session, state="failed")
            recent = await get(session, since="5h")
            window = await get(session, since=str(sent[2]["at"]), until=str(sent[5]["at"]))
            other = await get(session, route="another-route")
            slim = await get(session, limit=1, bodies="false")
    assert {row["rid"] for row in failed["data"]} == {
        s["rid"] for s in sent if s["kind"] == "failed"
    }
    assert all(row["state"] == "failed" and row["status"] == 503 for row in failed["data"])
    assert [row["rid"] for row in recent["data"]] == [s["rid"] for s in reversed(sent[-5:])]
    assert [row["rid"] for row in window["data"]] == [s["rid"] for s in reversed(sent[2:5])]
    assert other == {"data": [], "next": None}
    assert "request" not in slim["data"][0] and "attempts" in slim["data"][0]


async def test_admin_token_and_bad_parameters(tmp_path: Path) -> None:
    async with database("sqlite", tmp_path) as url, journal_stack(url, tmp_path / "wal") as stack:
        async with serving(stack, stack.clock) as session:
            async with session.get("/standby/journal", headers={"authorization": ""}) as r:
                assert r.status == 401
            for params, words in [
                ({"limit": "0"}, "between 1 and 500"),
                ({"limit": "ten"}, "whole number"),
                ({"state": "done"}, "state must be one of"),
                ({"since": "yesterday"}, "since: bad time"),
                ({"bodies": "maybe"}, "bodies"),
            ]:
                async with session.get("/standby/journal", params=params) as r:
                    assert r.status == 400
                    assert words in await r.text()


class DeadJournal:
    """A journal service whose database is away (a port nothing listens on)."""

    def __init__(self) -> None:
        self.store = SQLStore.from_url("postgresql://standby:s3cret@127.0.0.1:9/journal")

    async def flush(self) -> None:
        raise JournalUnavailable("the journal database is 100 bytes behind")


async def test_an_unreachable_database_is_a_503_without_secrets() -> None:
    service = DeadJournal()
    try:
        async with (
            serving(service, Clock()) as session,
            session.get("/standby/journal") as response,
        ):
            assert response.status == 503
            text = await response.text()
    finally:
        await service.store.close()
    assert "unreachable" in text and "s3cret" not in text
