"""The chat page's API against a real gateway and real sims: answers stream through the
routes (a break mid-answer is continued on the backup and marked), stop cancels the
provider's stream, a question nothing can answer is queued and completed when a
provider returns, and the API keeps other sites and other clients out."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway, running_gateway
from tests.conftest import two_target_plan
from tests.e2e.test_client_gone import WatchedSim

WAIT = 15.0


def chat_plan(primary: SimProvider, backup: SimProvider, **overrides: Any) -> dict[str, Any]:
    return two_target_plan(primary, backup, chat={"enabled": True}, **overrides)


async def ask(
    http: aiohttp.ClientSession, gw: RunningGateway, content: str, **fields: Any
) -> list[tuple[str, dict[str, Any]]]:
    """Post a question; every event of its answer's stream, to its end."""
    events: list[tuple[str, dict[str, Any]]] = []
    async with asyncio.timeout(WAIT):
        async with http.post(
            f"{gw.root_url}/chat/api/messages", json={"content": content, **fields}
        ) as resp:
            assert resp.status == 200, await resp.text()
            async for kind, data in read_events(resp):
                events.append((kind, data))
    return events


async def read_events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            lines = dict(line.split(b": ", 1) for line in block.split(b"\n"))
            yield lines[b"event"].decode(), orjson.loads(lines[b"data"])


def end_of(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    assert events[-1][0] in ("end", "queued"), events
    return events[-1][1]


async def test_an_answer_streams_and_is_kept_with_the_model_that_wrote_it(
    primary: SimProvider, backup: SimProvider
) -> None:
    async with running_gateway(chat_plan(primary, backup)) as gw, aiohttp.ClientSession() as http:
        events = await ask(http, gw, "Hello there")
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "start" and kinds[1] == "snapshot" and "target" in kinds
        assert kinds.count("delta") >= 2  # it streamed, word by word
        end = end_of(events)
        assert end["state"] == "done" and end["provider"] == "primary"
        assert end["text"] == primary.expected_text() and not end["continued"]
        cid = events[0][1]["conversation_id"]
        async with http.get(f"{gw.root_url}/chat/api/conversations/{cid}") as resp:
            thread = await resp.json()
        assert thread["conversation"]["title"] == "Hello there"
        roles = [(m["role"], m["state"], m["provider"]) for m in thread["messages"]]
        assert roles == [("user", "done", None), ("assistant", "done", "primary")]
        # the journal has the request, as the API's own requests (the same routes)
        async with http.get(f"{gw.root_url}/standby/journal?limit=5&bodies=false") as resp:
            rows = (await resp.json())["data"]
        assert [(row["endpoint"], row["state"]) for row in rows] == [("chat", "completed")]


async def test_a_break_mid_answer_is_continued_on_the_backup_and_marked(
    primary: SimProvider, backup: SimProvider
) -> None:
    async with running_gateway(chat_plan(primary, backup)) as gw, aiohttp.ClientSession() as http:
        primary.set_fault(Fault("cut_stream", after=4, times=1))
        events = await ask(http, gw, "Tell me a story")
        assert ("continued", {"provider": "backup", "model": "gpt-4o-mini"}) in events
        end = end_of(events)
        assert end["state"] == "done" and end["continued"] is True
        assert end["text"] == primary.expected_text()  # one complete answer, no overlap
        cid = events[0][1]["conversation_id"]
        async with http.get(f"{gw.root_url}/chat/api/conversations/{cid}") as resp:
            answer = (await resp.json())["messages"][-1]
        assert answer["continued"] is True and answer["provider"] == "backup"


async def test_stop_cancels_the_providers_stream_and_keeps_the_text_so_far() -> None:
    async with (
        WatchedSim("primary", chunk_delay=0.1, words=40) as primary,
        SimProvider("backup") as backup,
        running_gateway(chat_plan(primary, backup)) as gw,
        aiohttp.ClientSession() as http,
    ):
        async with asyncio.timeout(WAIT):
            async with http.post(
                f"{gw.root_url}/chat/api/messages", json={"content": "Go on"}
            ) as resp:
                events = read_events(resp)
                answer_id = ""
                deltas = 0
                async for kind, data in events:
                    if kind == "start":
                        answer_id = data["answer_id"]
                    if kind == "delta":
                        deltas += 1
                    if deltas == 3:
                        break
                async with http.post(
                    f"{gw.root_url}/chat/api/messages/{answer_id}/stop", json={}
                ) as stopped:
                    assert stopped.status == 200
                await primary.cut.wait()  # the provider saw its stream closed
                last = [event async for event in events][-1]
        assert last[0] == "end" and last[1]["state"] == "stopped"
        assert 0 < len(last[1]["text"]) < len(primary.expected_text())
        assert not primary.answered.is_set()


async def test_a_question_nothing_can_answer_is_queued_and_answered_on_recovery(
    primary: SimProvider, backup: SimProvider
) -> None:
    async with running_gateway(chat_plan(primary, backup)) as gw, aiohttp.ClientSession() as http:
        chat = gw.app.chat
        assert chat is not None
        chat.engine.retry_every = 0.1
        for sim in (primary, backup):
            sim.set_fault(Fault("error", status=503))
        events = await ask(http, gw, "Anyone there?")
        queued = end_of(events)
        assert events[-1][0] == "queued" and "answered as soon as" in queued["message"]
        cid = events[0][1]["conversation_id"]
        answer_id = events[0][1]["answer_id"]
        backup.clear()  # a provider returns
        async with asyncio.timeout(WAIT):
            while True:  # the engine tries queued answers every 0.1 s: bounded
                async with http.get(f"{gw.root_url}/chat/api/conversations/{cid}") as resp:
                    answer = (await resp.json())["messages"][-1]
                if answer["state"] == "done":
                    break
                await asyncio.sleep(0.05)
        assert answer["id"] == answer_id and answer["provider"] == "backup"
        assert answer["content"] == backup.expected_text()


def hashed(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


async def test_each_client_sees_only_its_conversations_and_other_sites_cannot_write(
    primary: SimProvider, backup: SimProvider
) -> None:
    keys = {"ann": hashed("sk-ann"), "bob": hashed("sk-bob")}
    plan = chat_plan(primary, backup, server={"client_keys": keys})
    async with running_gateway(plan) as gw:
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(f"{gw.root_url}/chat/api/conversations") as resp:
                assert resp.status == 401
        ann = aiohttp.ClientSession(headers={"Authorization": "Bearer sk-ann"})
        bob = aiohttp.ClientSession(headers={"Authorization": "Bearer sk-bob"})
        async with ann, bob:
            events = await ask(ann, gw, "ann's secret plan")
            cid = events[0][1]["conversation_id"]
            async with bob.get(f"{gw.root_url}/chat/api/conversations/{cid}") as resp:
                assert resp.status == 404  # not "forbidden": its existence does not leak
            async with bob.get(f"{gw.root_url}/chat/api/search?q=secret") as resp:
                assert (await resp.json())["hits"] == []
            async with ann.get(f"{gw.root_url}/chat/api/search?q=secret") as resp:
                hits = (await resp.json())["hits"]
            assert [hit["conversation"]["id"] for hit in hits] == [cid]
            # a form post from another site: no JSON, or a foreign Origin
            async with ann.post(f"{gw.root_url}/chat/api/messages", data={"content": "hi"}) as resp:
                assert resp.status == 400
            async with ann.post(
                f"{gw.root_url}/chat/api/messages",
                json={"content": "hi"},
                headers={"Origin": "https://evil.example"},
            ) as resp:
                assert resp.status == 400


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (b'{"content": 5}', 400, "'content'"),
        (b'{"content": "hi", "model": "no-such-model"}', 404, "does not exist"),
        (b'{"content": "hi", "conversation_id": "conv_nope"}', 404, "no conversation"),
        (b'{"content": "' + b"x" * 600_000 + b'"}', 400, "larger than"),
    ],
)
async def test_bad_questions_get_clear_errors(
    primary: SimProvider, backup: SimProvider, body: bytes, status: int, says: str
) -> None:
    async with running_gateway(chat_plan(primary, backup)) as gw, aiohttp.ClientSession() as http:
        async with http.post(
            f"{gw.root_url}/chat/api/messages",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as resp:
            assert resp.status == status
            assert says in (await resp.json())["error"]["message"]


async def test_export_and_the_page_itself(primary: SimProvider, backup: SimProvider) -> None:
    async with running_gateway(chat_plan(primary, backup)) as gw, aiohttp.ClientSession() as http:
        events = await ask(http, gw, "Export me")
        cid = events[0][1]["conversation_id"]
        url = f"{gw.root_url}/chat/api/conversations/{cid}/export?format=markdown"
        async with http.get(url) as resp:
            text = await resp.text()
            assert "attachment" in resp.headers["content-disposition"]
        assert "Export me" in text and primary.expected_text() in text
        async with http.get(f"{gw.root_url}/chat/api/export?format=json") as resp:
            everything = orjson.loads(await resp.read())
        assert cid in orjson.dumps(everything).decode()
        async with http.get(f"{gw.root_url}/chat") as resp:
            page = await resp.text()
            assert "script-src 'self'" in resp.headers["content-security-policy"]
        assert '<script src="/chat/static/chat.js"' in page
        async with http.get(f"{gw.root_url}/chat/static/chat.js") as resp:
            assert resp.status == 200 and "textContent" in await resp.text()
        async with http.get(f"{gw.root_url}/chat/api/status") as resp:
            status = await resp.json()
        assert {p["name"]: p["state"] for p in status["providers"]} == {
            "primary": "up",
            "backup": "up",
        }
        assert status["default_model"] == "gpt-4o-mini"
