"""The stored-completions endpoints through the official SDK, over an in-memory store.

The routes are served by a real uvicorn on loopback; the journal service is a small
in-memory double of the ``JournalStore`` protocol, so every wire detail (pages, cursors,
errors, the plan's switch, client keys, a database outage) is checked without a gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import aiohttp
import openai
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette

from standby.errors import JournalUnavailable
from standby.journal import schema
from standby.journal.journal import Journal as JournalWriteSide
from standby.journal.sql import SQLStore
from standby.journal.store import JournalStore, StoredCompletion
from standby.journal.wal import WriteAheadLog
from standby.journal.writer import JournalWriter
from standby.plan.model import ClientKey, JournalConfig
from standby.web.clients import ClientKeys, hash_key
from standby.web.completions_api import CompletionsService, completions_routes


class MemoryStore:
    """Stored completions in a list, oldest first; the cursor is a completion id."""

    def __init__(self, items: list[StoredCompletion]) -> None:
        self.items = list(items)
        self.owners: list[str | None] = []  # whose rows each call asked for

    async def get_completion(
        self, completion_id: str, *, owner: str | None = None
    ) -> StoredCompletion | None:
        self.owners.append(owner)
        return next((c for c in self.items if c.completion_id == completion_id), None)

    async def list_completions(
        self,
        *,
        model: str | None = None,
        metadata: dict[str, str] | None = None,
        after: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "asc",
        owner: str | None = None,
    ) -> tuple[list[StoredCompletion], bool]:
        self.owners.append(owner)
        rows = [
            c
            for c in self.items
            if (model is None or c.model == model)
            and all(c.metadata.get(k) == v for k, v in (metadata or {}).items())
        ]
        if order == "desc":
            rows.reverse()
        if after is not None:
            ids = [c.completion_id for c in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        return rows[:limit], len(rows) > limit

    async def update_metadata(
        self, completion_id: str, metadata: dict[str, str], *, owner: str | None = None
    ) -> StoredCompletion | None:
        self.owners.append(owner)
        for i, c in enumerate(self.items):
            if c.completion_id == completion_id:
                self.items[i] = dataclasses.replace(c, metadata=metadata)
                return self.items[i]
        return None

    async def delete_completion(self, completion_id: str, *, owner: str | None = None) -> bool:
        self.owners.append(owner)
        before = len(self.items)
        self.items = [c for c in self.items if c.completion_id != completion_id]
        return len(self.items) < before


class MemoryService:
    def __init__(self, store: MemoryStore, config: JournalConfig) -> None:
        self._store, self._config = store, config
        self.flushes = 0
        self.down = False

    @property
    def store(self) -> JournalStore:
        return self._store  # type: ignore[return-value]  # only the completion methods

    @property
    def config(self) -> JournalConfig:
        return self._config

    async def flush(self) -> None:
        if self.down:
            raise JournalUnavailable("database is unreachable")
        self.flushes += 1


def stored(
    n: int,
    *,
    model: str = "gpt-4o-mini",
    metadata: dict[str, str] | None = None,
    redacted: bool = False,
) -> StoredCompletion:
    cid = f"chatcmpl-{n}"
    request = {
        "model": "gpt-4o-mini",
        "temperature": 0.5,
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is "},
                    {"type": "text", "text": f"{n}?"},
                ],
            },
        ],
    }
    response = {
        "id": cid,
        "object": "chat.completion",
        "created": 1700000000 + n,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": f"answer {n}"},
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    return StoredCompletion(
        completion_id=cid,
        rid=f"req_{n}",
        created=1700000000.0 + n,
        model=model,
        provider="primary",
        request=None if redacted else request,
        response=None if redacted else response,
        metadata=metadata or {},
    )


@contextlib.asynccontextmanager
async def serving(
    service: CompletionsService | None,
    keys: ClientKeys | None = None,
) -> AsyncIterator[str]:
    app = Starlette(routes=completions_routes(service, keys or ClientKeys({})))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


@pytest.fixture
def service() -> MemoryService:
    items = [
        stored(1, metadata={"team": "a"}),
        stored(2, model="backup-model"),
        stored(3, metadata={"team": "a", "env": "prod"}),
        stored(4, redacted=True),
    ]
    return MemoryService(MemoryStore(items), JournalConfig())


@pytest.fixture
async def client(service: MemoryService) -> AsyncIterator[openai.AsyncOpenAI]:
    async with serving(service) as root:
        sdk = openai.AsyncOpenAI(base_url=root + "/v1", api_key="unused", max_retries=0)
        yield sdk
        await sdk.close()


async def test_retrieve_returns_the_answer_with_metadata_and_request(
    client: openai.AsyncOpenAI, service: MemoryService
) -> None:
    completion = await client.chat.completions.retrieve("chatcmpl-1")
    assert completion.id == "chatcmpl-1"
    assert completion.choices[0].message.content == "answer 1"
    assert completion.metadata == {"team": "a"}
    extra = completion.model_extra or {}
    assert extra["request_id"] == "req_1"
    assert extra["temperature"] == 0.5
    assert extra["seed"] is None
    assert service.flushes == 1  # read-your-writes


async def test_list_pages_with_the_sdk_cursor(client: openai.AsyncOpenAI) -> None:
    ids = [c.id async for c in client.chat.completions.list(limit=1)]
    assert ids == ["chatcmpl-1", "chatcmpl-2", "chatcmpl-3", "chatcmpl-4"]
    page = await client.chat.completions.list(limit=2, order="desc")
    assert [c.id for c in page.data] == ["chatcmpl-4", "chatcmpl-3"]
    assert page.has_more
    raw = page.model_dump()
    assert (raw["object"], raw["first_id"], raw["last_id"]) == ("list", "chatcmpl-4", "chatcmpl-3")
    page = await client.chat.completions.list(after="chatcmpl-3", order="desc")
    assert [c.id for c in page.data] == ["chatcmpl-2", "chatcmpl-1"]
    assert not page.has_more


async def test_list_filters_by_model_and_metadata(client: openai.AsyncOpenAI) -> None:
    page = await client.chat.completions.list(model="backup-model")
    assert [c.id for c in page.data] == ["chatcmpl-2"]
    page = await client.chat.completions.list(metadata={"team": "a"})
    assert [c.id for c in page.data] == ["chatcmpl-1", "chatcmpl-3"]
    page = await client.chat.completions.list(metadata={"team": "a", "env": "prod"})
    assert [c.id for c in page.data] == ["chatcmpl-3"]


async def test_messages_are_the_request_messages(client: openai.AsyncOpenAI) -> None:
    messages = [m async for m in client.chat.completions.messages.list("chatcmpl-1", limit=1)]
    assert [m.id for m in messages] == ["chatcmpl-1-0", "chatcmpl-1-1"]
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[0].content == "be brief"
    assert messages[0].content_parts is None
    assert messages[1].content == "what is 1?"
    assert messages[1].content_parts is not None and len(messages[1].content_parts) == 2
    page = await client.chat.completions.messages.list("chatcmpl-1", order="desc")
    assert [m.id for m in page.data] == ["chatcmpl-1-1", "chatcmpl-1-0"]
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.messages.list("chatcmpl-1", after="chatcmpl-9-0")


async def test_update_replaces_metadata(client: openai.AsyncOpenAI) -> None:
    updated = await client.chat.completions.update("chatcmpl-1", metadata={"reviewed": "yes"})
    assert updated.metadata == {"reviewed": "yes"}
    assert (await client.chat.completions.retrieve("chatcmpl-1")).metadata == {"reviewed": "yes"}
    cleared = await client.chat.completions.update("chatcmpl-1", metadata=None)
    assert cleared.metadata == {}


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata"),
        ({"k": 1}, "metadata.k"),
        ({"k": "v" * 513}, "metadata.k"),
        ({"k" * 65: "v"}, "metadata"),
    ],
)
async def test_update_refuses_bad_metadata(
    client: openai.AsyncOpenAI, metadata: Any, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.update("chatcmpl-1", metadata=metadata)
    assert caught.value.param == param


async def test_delete_then_not_found(client: openai.AsyncOpenAI) -> None:
    deleted = await client.chat.completions.delete("chatcmpl-2")
    assert (deleted.id, deleted.object, deleted.deleted) == (
        "chatcmpl-2",
        "chat.completion.deleted",
        True,
    )
    for call in (
        client.chat.completions.retrieve("chatcmpl-2"),
        client.chat.completions.delete("chatcmpl-2"),
        client.chat.completions.update("chatcmpl-2", metadata={}),
        client.chat.completions.messages.list("chatcmpl-2"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            await call
        assert caught.value.message.endswith("No chat completion found with id 'chatcmpl-2'.")
        assert caught.value.type == "invalid_request_error"


async def test_redacted_completion_keeps_its_identity(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.retrieve("chatcmpl-4")
    assert (completion.id, completion.model, completion.created) == (
        "chatcmpl-4",
        "gpt-4o-mini",
        1700000004,
    )
    assert completion.choices == []
    assert (await client.chat.completions.messages.list("chatcmpl-4")).data == []


@pytest.mark.parametrize(
    ("query", "param", "code"),
    [
        ("limit=0", "limit", "integer_below_min_value"),
        ("limit=101", "limit", "integer_above_max_value"),
        ("limit=many", "limit", "invalid_type"),
        ("order=newest", "order", "invalid_value"),
    ],
)
async def test_bad_list_parameters_are_400(
    service: MemoryService, query: str, param: str, code: str
) -> None:
    async with serving(service) as root, aiohttp.ClientSession() as http:
        for path in ("/v1/chat/completions", "/chat/completions/chatcmpl-1/messages"):
            async with http.get(f"{root}{path}?{query}") as reply:
                assert reply.status == 400
                error = (await reply.json())["error"]
                assert (error["type"], error["param"], error["code"]) == (
                    "invalid_request_error",
                    param,
                    code,
                )


async def test_paths_without_v1_and_bad_update_bodies(service: MemoryService) -> None:
    async with serving(service) as root, aiohttp.ClientSession() as http:
        async with http.get(f"{root}/chat/completions/chatcmpl-3") as reply:
            assert reply.status == 200
            assert (await reply.json())["metadata"] == {"team": "a", "env": "prod"}
        for body in (b"{not json", b"[]", b"{}", b'{"metadata": "x"}'):
            async with http.post(f"{root}/v1/chat/completions/chatcmpl-3", data=body) as reply:
                assert reply.status == 400
                assert (await reply.json())["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "journal", [JournalConfig(store=False), JournalConfig(enabled=False), None]
)
async def test_plan_switch_off_answers_404_everywhere(
    service: MemoryService, journal: JournalConfig | None
) -> None:
    off = MemoryService(service._store, journal) if journal is not None else None
    async with serving(off) as root:
        sdk = openai.AsyncOpenAI(base_url=root + "/v1", api_key="unused", max_retries=0)
        for call in (
            sdk.chat.completions.retrieve("chatcmpl-1"),
            sdk.chat.completions.list(),
            sdk.chat.completions.update("chatcmpl-1", metadata={}),
            sdk.chat.completions.delete("chatcmpl-1"),
            sdk.chat.completions.messages.list("chatcmpl-1"),
        ):
            with pytest.raises(openai.NotFoundError) as caught:
                await call
            assert caught.value.code == "stored_completions_disabled"
        await sdk.close()
    assert off is None or off.flushes == 0
    assert len(service._store.items) == 4


async def test_client_keys_are_checked(service: MemoryService) -> None:
    keys = ClientKeys({"good": ClientKey(key=hash_key("sk-good"))}, admin_token="admin-token")
    async with serving(service, keys) as root:
        for key, ok in (("sk-bad", False), ("sk-good", True), ("admin-token", True)):
            sdk = openai.AsyncOpenAI(base_url=root + "/v1", api_key=key, max_retries=0)
            if ok:
                assert (await sdk.chat.completions.list()).data
            else:
                with pytest.raises(openai.AuthenticationError) as caught:
                    await sdk.chat.completions.retrieve("chatcmpl-1")
                assert caught.value.code == "invalid_api_key"
            await sdk.close()
    # each client reads its own rows; the admin token reads everyone's
    assert service._store.owners == ["good", None]


async def test_journal_database_down_is_503_with_retry_after(service: MemoryService) -> None:
    service.down = True
    async with serving(service) as root, aiohttp.ClientSession() as http:
        async with http.get(f"{root}/v1/chat/completions/chatcmpl-1") as reply:
            assert reply.status == 503
            assert int(reply.headers["retry-after"]) > 0
            error = (await reply.json())["error"]
            assert (error["type"], error["code"]) == ("server_error", "journal_unavailable")


class RealJournal:
    """The journal's real pieces (log, writer, SQLite store) behind the service's names."""

    def __init__(self, directory: Path, config: JournalConfig) -> None:
        self.wal = WriteAheadLog(directory / "wal")
        self.sql = SQLStore.from_url(f"sqlite:///{directory / 'journal.db'}")
        self.writer = JournalWriter(self.wal, self.sql, wal_id="test")
        self.journal = JournalWriteSide(self.wal, redact=config.redact)
        self.config = config

    @property
    def store(self) -> JournalStore:
        return self.sql

    async def flush(self) -> None:
        await self.writer.flush()


async def test_real_journal_read_your_writes(tmp_path: Path) -> None:
    real = RealJournal(tmp_path, JournalConfig())
    async with real.sql.engine.begin() as conn:
        await conn.run_sync(schema.metadata.create_all)
    await real.writer.start()
    for n, store in ((1, True), (2, False), (3, True)):
        answer = stored(n, metadata={"n": str(n)})
        assert answer.request is not None and answer.response is not None
        real.journal.accepted(
            f"req_{n}",
            endpoint="chat",
            route="gpt-4o-mini",
            model="gpt-4o-mini",
            stream=False,
            raw_body=orjson.dumps(answer.request),
            metadata=answer.metadata,
            store=store,
        )
        real.journal.completed(
            f"req_{n}",
            completion_id=answer.completion_id,
            provider="primary",
            model=answer.model,
            response=orjson.dumps(answer.response),
            usage=None,
            attempts=[("primary/gpt-4o-mini", "ok", 0.1)],
        )
    async with serving(real) as root:  # no sleep: every call flushes first
        sdk = openai.AsyncOpenAI(base_url=root + "/v1", api_key="unused", max_retries=0)
        assert [c.id async for c in sdk.chat.completions.list(limit=1)] == [
            "chatcmpl-1",
            "chatcmpl-3",
        ]
        got = await sdk.chat.completions.retrieve("chatcmpl-3")
        assert (got.metadata, got.choices[0].message.content) == ({"n": "3"}, "answer 3")
        with pytest.raises(openai.NotFoundError):
            await sdk.chat.completions.retrieve("chatcmpl-2")  # store: false
        await sdk.chat.completions.update("chatcmpl-1", metadata={"n": "one"})
        page = await sdk.chat.completions.list(metadata={"n": "one"})
        assert [c.id for c in page.data] == ["chatcmpl-1"]
        assert (await sdk.chat.completions.delete("chatcmpl-1")).deleted
        assert [c.id for c in (await sdk.chat.completions.list()).data] == ["chatcmpl-3"]
        messages = await sdk.chat.completions.messages.list("chatcmpl-3")
        assert [m.content for m in messages.data] == ["be brief", "what is 3?"]
        await sdk.close()
    await real.writer.stop()
    await real.sql.close()
    real.wal.close()
