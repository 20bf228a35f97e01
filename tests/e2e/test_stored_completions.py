"""Stored completions end to end: the official SDK against a real gateway, real simulated
providers and the real journal (write-ahead log + SQLite in a temporary directory).

Everything a client stores through ``POST /v1/chat/completions`` (streamed or not) must be
retrievable, listable, pageable, filterable, updatable and deletable with
``client.chat.completions.*`` — and name the model that really answered after a failover.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from standby.sim import Fault, SimProvider
from standby.testing import running_gateway
from standby.web.clients import hash_key
from tests.conftest import two_target_plan

CLIENT_KEY = "sk-client-for-stored-completions"


def journaled(plan: dict[str, Any], tmp_path: Path, **journal: Any) -> dict[str, Any]:
    """``plan`` with its journal (log and SQLite database) in ``tmp_path``, spelled out."""
    plan["journal"] = {
        "url": f"sqlite:///{tmp_path / 'journal.db'}",
        "wal_dir": str(tmp_path / "wal"),
        **journal,
    }
    return plan


@pytest.fixture
async def client(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> AsyncIterator[openai.AsyncOpenAI]:
    # the journal's default place: <data_dir>/standby.db and <data_dir>/standby-wal/
    async with running_gateway(two_target_plan(primary, backup), data_dir=tmp_path) as gw:
        assert (tmp_path / "standby.db").exists()
        sdk = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        yield sdk
        await sdk.close()


async def streamed(client: openai.AsyncOpenAI, **kwargs: Any) -> tuple[str, str, str]:
    """``(id, text, model)`` of one streamed chat completion."""
    stream = await client.chat.completions.create(model="gpt-4o-mini", stream=True, **kwargs)
    ids, text, model = set(), "", ""
    async for chunk in stream:
        ids.add(chunk.id)
        model = chunk.model
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    assert len(ids) == 1
    return ids.pop(), text, model


async def test_store_retrieve_list_update_delete(
    client: openai.AsyncOpenAI, primary: SimProvider
) -> None:
    chat = client.chat.completions
    first = await chat.create(
        model="gpt-4o-mini",
        store=True,
        metadata={"team": "alpha"},
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"}],
    )
    second_id, second_text, _ = await streamed(
        client,
        store=True,
        metadata={"team": "beta"},
        messages=[{"role": "user", "content": "second"}],
    )
    third = await chat.create(
        model="gpt-4o-mini",
        store=True,
        metadata={"team": "alpha", "env": "prod"},
        messages=[{"role": "user", "content": "third"}],
    )
    unasked = await chat.create(  # OpenAI's default: a chat completion is not stored
        model="gpt-4o-mini",
        metadata={"team": "alpha"},
        messages=[{"role": "user", "content": "not asked to be stored"}],
    )
    hidden = await chat.create(
        model="gpt-4o-mini",
        store=False,
        metadata={"team": "alpha"},
        messages=[{"role": "user", "content": "not for the journal"}],
    )
    ids = [first.id, second_id, third.id]
    assert len({*ids, hidden.id, unasked.id}) == 5

    got = await chat.retrieve(first.id)  # read-your-writes: no wait for the writer
    assert got.choices[0].message.content == first.choices[0].message.content
    assert got.choices[0].message.content == primary.expected_text()
    assert (got.model, got.metadata) == (first.model, {"team": "alpha"})
    assert got.usage == first.usage
    streamed_back = await chat.retrieve(second_id)
    assert streamed_back.choices[0].message.content == second_text
    assert streamed_back.choices[0].finish_reason == "stop"
    with pytest.raises(openai.NotFoundError) as caught:
        await chat.retrieve(hidden.id)
    assert caught.value.message.endswith(f"No chat completion found with id '{hidden.id}'.")
    with pytest.raises(openai.NotFoundError):
        await chat.retrieve(unasked.id)

    assert [c.id async for c in chat.list(limit=1)] == ids  # the SDK follows `after`
    page = await chat.list(limit=1)
    assert page.has_more and [c.id for c in page.data] == ids[:1]
    page = await chat.list(limit=2, after=ids[0])
    assert [c.id for c in page.data] == ids[1:] and not page.has_more
    assert [c.id for c in (await chat.list(order="desc")).data] == ids[::-1]
    assert [c.id for c in (await chat.list(metadata={"team": "alpha"})).data] == [
        first.id,
        third.id,
    ]
    assert [c.id for c in (await chat.list(metadata={"team": "alpha", "env": "prod"})).data] == [
        third.id
    ]
    assert [c.id for c in (await chat.list(model="gpt-4o-mini")).data] == ids
    assert (await chat.list(model="another-model")).data == []

    messages = [m async for m in chat.messages.list(first.id, limit=1)]
    assert [(m.id, m.role, m.content) for m in messages] == [
        (f"{first.id}-0", "system", "be brief"),
        (f"{first.id}-1", "user", "first"),
    ]
    desc = await chat.messages.list(first.id, order="desc")
    assert [m.id for m in desc.data] == [f"{first.id}-1", f"{first.id}-0"]

    updated = await chat.update(first.id, metadata={"team": "alpha", "reviewed": "yes"})
    assert updated.metadata == {"team": "alpha", "reviewed": "yes"}
    assert [c.id for c in (await chat.list(metadata={"reviewed": "yes"})).data] == [first.id]
    with pytest.raises(openai.BadRequestError):
        await chat.update(first.id, metadata={f"k{i}": "v" for i in range(17)})

    deleted = await chat.delete(second_id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        second_id,
        "chat.completion.deleted",
        True,
    )
    for call in (chat.retrieve(second_id), chat.delete(second_id), chat.messages.list(second_id)):
        with pytest.raises(openai.NotFoundError):
            await call
    assert [c.id async for c in chat.list()] == [first.id, third.id]


async def test_failover_stores_the_model_that_answered(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> None:
    plan = journaled(two_target_plan(primary, backup), tmp_path, store="always")
    plan["routes"] = {"gpt-4o-mini": {"targets": ["primary/gpt-4o-mini", "backup/backup-mini"]}}
    async with running_gateway(plan) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        chat = client.chat.completions
        primary.set_fault(Fault("cut_stream", after=3))  # continued on the backup
        cut_id, cut_text, _ = await streamed(client, messages=[{"role": "user", "content": "cut"}])
        primary.set_fault(Fault("error", status=503))  # a plain failover
        reply = await chat.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "down"}]
        )
        assert reply.model == "backup-mini"

        cut = await chat.retrieve(cut_id)
        assert cut.choices[0].message.content == cut_text == primary.expected_text()
        assert cut.model == "backup-mini"
        stored = await chat.retrieve(reply.id)
        assert stored.model == "backup-mini"
        assert stored.choices[0].message.content == backup.expected_text()
        assert [c.id for c in (await chat.list(model="backup-mini")).data] == [cut_id, reply.id]
        # a client filtering by the name it asks for still finds its completions
        assert [c.id for c in (await chat.list(model="gpt-4o-mini")).data] == [cut_id, reply.id]
        await client.close()


async def test_plan_turns_storing_off(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> None:
    plan = journaled(two_target_plan(primary, backup), tmp_path, store="never")
    async with running_gateway(plan) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", store=True, messages=[{"role": "user", "content": "private"}]
        )
        for call in (
            client.chat.completions.retrieve(reply.id),
            client.chat.completions.list(),
            client.chat.completions.messages.list(reply.id),
        ):
            with pytest.raises(openai.NotFoundError) as caught:
                await call
            assert caught.value.code == "stored_completions_disabled"
        await client.close()


async def test_client_keys_guard_stored_completions(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> None:
    plan = two_target_plan(primary, backup, server={"client_keys": [hash_key(CLIENT_KEY)]})
    async with running_gateway(plan, data_dir=tmp_path) as gw:
        good = openai.AsyncOpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0)
        bad = openai.AsyncOpenAI(base_url=gw.base_url, api_key="sk-wrong", max_retries=0)
        reply = await good.chat.completions.create(
            model="gpt-4o-mini", store=True, messages=[{"role": "user", "content": "hi"}]
        )
        for call in (
            bad.chat.completions.retrieve(reply.id),
            bad.chat.completions.list(),
            bad.chat.completions.delete(reply.id),
        ):
            with pytest.raises(openai.AuthenticationError) as caught:
                await call
            assert caught.value.code == "invalid_api_key"
        assert (await good.chat.completions.retrieve(reply.id)).id == reply.id
        await good.close()
        await bad.close()


async def test_journal_database_down_is_a_503_and_chat_keeps_working(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> None:
    plan = two_target_plan(
        primary,
        backup,
        journal={
            "url": "postgresql://standby@127.0.0.1:9/journal",  # nothing listens there
            "wal_dir": str(tmp_path / "wal"),
        },
    )
    async with running_gateway(plan) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == primary.expected_text()
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.retrieve(reply.id)
        assert caught.value.status_code == 503
        assert int(caught.value.response.headers["retry-after"]) > 0
        assert caught.value.code == "journal_unavailable"
        await client.close()
