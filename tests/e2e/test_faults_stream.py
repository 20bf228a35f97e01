"""Fault catalogue, broken streams: F09-F12, F15, F23.

A stream that breaks after content was sent must be continued on another target so the
client sees one complete stream with one id; a break before any content is a plain
failover; when nothing can continue, the stream ends with an error event and no
``[DONE]``. The real gateway, the official ``openai`` SDK, simulated providers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai.types import CompletionUsage

from standby.sim import Fault, SimProvider
from tests.conftest import two_target_plan
from tests.e2e.faults_support import (
    EXCHANGE_TIMEOUT,
    MESSAGES,
    WEATHER_TOOL,
    last_message,
    seen,
    serve,
)

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
WEATHER = {"city": "Paris", "unit": "celsius"}


def _prefill_plan(primary: SimProvider, backup: SimProvider, prefill: bool) -> dict[str, Any]:
    plan = two_target_plan(primary, backup)
    plan["providers"]["backup"]["prefill"] = prefill
    return plan


def _words(sim: SimProvider, n: int) -> str:
    return " ".join(sim.expected_text().split()[:n])


# -- F09 stream cut mid-answer --------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "overlap", "prefill"),
    [
        (3, 0, False),
        (3, 0, True),
        (3, 10, False),
        (3, 10, True),
        (1, 0, False),
        (19, 0, True),
        (10, 10, False),
    ],
    ids=[
        "instruction",
        "prefill",
        "overlap-instruction",
        "overlap-prefill",
        "after-first-word",
        "before-finish",
        "overlap-mid",
    ],
)
async def test_f09_cut_stream_is_continued_as_one_stream(
    primary: SimProvider, after: int, overlap: int, prefill: bool
) -> None:
    primary.set_fault(Fault("cut_stream", after=after))
    async with (
        SimProvider("backup", overlap=overlap) as backup,
        serve(_prefill_plan(primary, backup, prefill)) as gw,
    ):
        got = await gw.ask(stream=True)
    assert got.text == primary.expected_text(), "no word lost, none repeated"
    assert len(set(got.ids)) == 1, "one stream, one id"
    assert got.roles == ["assistant"]
    assert got.finish_reason == "stop"
    assert got.models == {"gpt-4o-mini"}
    assert got.provider == "primary"  # the headers went out before the cut
    assert seen(primary) == ["cut_stream"]
    assert len(backup.requests) == 1
    sent = _words(primary, after)
    if prefill:
        assert last_message(backup) == {"role": "assistant", "content": sent}
    else:
        assert backup.requests[0].body["messages"][-2] == {"role": "assistant", "content": sent}
        assert last_message(backup)["role"] == "user"


async def test_f09_cut_before_any_content_is_a_plain_failover(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("cut_stream", after=0))
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=True)
    assert (got.provider, got.attempts) == ("backup", 2)
    assert got.text == backup.expected_text()
    assert len(set(got.ids)) == 1
    assert backup.requests[0].body["messages"] == MESSAGES, "the original request, as asked"


async def test_f09_cut_plain_reply_fails_over(primary: SimProvider, backup: SimProvider) -> None:
    primary.set_fault(Fault("cut_stream"))  # without a stream: half the body, then a reset
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=False)
    assert (got.provider, got.attempts) == ("backup", 2)
    assert got.text == backup.expected_text()
    assert got.finish_reason == "stop"
    assert seen(primary) == ["cut_stream"]
    assert backup.requests[0].body["messages"] == MESSAGES


async def test_f09_nothing_can_continue_ends_with_an_error_event_and_no_done(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("cut_stream", after=3))
    backup.set_fault(Fault("error", status=503))
    async with serve(two_target_plan(primary, backup)) as gw:
        text = ""
        chunks = await gw.client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            async with asyncio.timeout(EXCHANGE_TIMEOUT):
                async for chunk in chunks:
                    if chunk.choices:
                        text += chunk.choices[0].delta.content or ""
        await chunks.close()
        payload = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
        async with (
            asyncio.timeout(EXCHANGE_TIMEOUT),
            aiohttp.ClientSession() as session,
            session.post(gw.gw.base_url + "/chat/completions", json=payload) as resp,
        ):
            status, raw = resp.status, await resp.read()
    assert text == _words(primary, 3), "what was sent stays sent; nothing pretends to finish"
    assert not isinstance(caught.value, openai.APIStatusError), "the stream had started"
    assert status == 200
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "server_error"
    assert b"[DONE]" not in raw, "a truncated answer is never presented as complete"
    assert b'"finish_reason":"stop"' not in raw
    last = raw.strip().split(b"\n\n")[-1]
    assert orjson.loads(last.removeprefix(b"data: "))["error"]["type"] == "server_error"


# -- F10 stream stalls ----------------------------------------------------------------------


@STREAMS
async def test_f10_stall_hits_the_idle_deadline_then_continues(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("stall", after=3, delay=0))  # held until released: never here
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=stream)
    assert got.text == primary.expected_text()
    assert len(set(got.ids)) == 1
    assert got.finish_reason == "stop"
    assert 1.0 <= got.seconds < 3.0, "the idle deadline (1 s) decides"
    assert seen(primary) == ["stall"]
    assert len(backup.requests) == 1
    if stream:  # continued: the backup was asked for the rest
        assert backup.requests[0].body["messages"][-2]["content"] == _words(primary, 3)
    else:  # nothing reached the client: a plain failover
        assert (got.provider, got.attempts) == ("backup", 2)


# -- F11 malformed SSE event ----------------------------------------------------------------


async def test_f11_malformed_event_is_skipped(primary: SimProvider, backup: SimProvider) -> None:
    primary.set_fault(Fault("malformed_event", after=3))
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=True)
    assert (got.provider, got.attempts) == ("primary", 1)
    assert got.text == primary.expected_text()
    assert len(set(got.ids)) == 1
    assert got.finish_reason == "stop"
    assert seen(primary) == ["malformed_event"]
    assert backup.requests == []


# -- F12 stream ends without [DONE] ---------------------------------------------------------


@pytest.mark.parametrize("usage", [False, True], ids=["no-usage", "include-usage"])
async def test_f12_missing_done_is_finalised_promptly(
    primary: SimProvider, backup: SimProvider, usage: bool
) -> None:
    primary.set_fault(Fault("no_done"))
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if usage else {}
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=True, **extra)
    assert (got.provider, got.attempts) == ("primary", 1)
    assert got.text == primary.expected_text()
    assert got.finish_reason == "stop"
    assert got.seconds < 0.9, "finalised at once, not at the idle deadline (1 s)"
    expected = CompletionUsage(prompt_tokens=1, completion_tokens=20, total_tokens=21)
    assert got.usage == (expected if usage else None)
    assert seen(primary) == ["no_done"]
    assert backup.requests == []


async def test_f12_missing_done_and_finish_is_continued(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("no_done_no_finish"))
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=True)
    assert got.text == primary.expected_text()
    assert len(set(got.ids)) == 1
    assert got.finish_reason == "stop"
    assert seen(primary) == ["no_done_no_finish"]
    assert len(backup.requests) == 1
    assert backup.requests[0].body["messages"][-2]["content"] == primary.expected_text()


# -- F15 continuation target rejects assistant prefill --------------------------------------


@pytest.mark.parametrize("refusal", ["accepts_prefill=False", "reject_prefill fault"])
async def test_f15_prefill_refusal_never_reaches_the_client(
    primary: SimProvider, refusal: str
) -> None:
    primary.set_fault(Fault("cut_stream", after=3))
    strict = refusal == "accepts_prefill=False"
    async with (
        SimProvider("backup", accepts_prefill=not strict) as backup,
        serve(_prefill_plan(primary, backup, True)) as gw,
    ):
        if not strict:
            backup.set_fault(Fault("reject_prefill"))
        first = await gw.ask(stream=True)
        second = await gw.ask(stream=True)  # the refusal was learned: instruction at once
    for got in (first, second):
        assert got.text == primary.expected_text()
        assert len(set(got.ids)) == 1
        assert got.finish_reason == "stop"
    assert seen(primary) == ["cut_stream", "cut_stream"]
    roles = [r.body["messages"][-1]["role"] for r in backup.requests]
    assert roles == ["assistant", "user", "user"]
    if not strict:
        assert seen(backup) == ["reject_prefill", "ok", "ok"]


# -- F23 tool-call stream cut mid-arguments -------------------------------------------------


async def test_f23_tool_call_cut_is_restarted_whole(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("tool_call_cut"))
    async with serve(two_target_plan(primary, backup)) as gw:
        got = await gw.ask(stream=True, tools=[WEATHER_TOOL])
    assert list(got.tool_calls) == [0], "exactly one tool call"
    call = got.tool_calls[0]
    assert call["name"] == "get_weather"
    assert call["id"] == "call_sim_1"
    assert json.loads(call["arguments"]) == WEATHER
    assert got.finish_reason == "tool_calls"
    assert got.text == ""
    assert len(set(got.ids)) == 1
    assert seen(primary) == ["tool_call_cut"]
    assert len(backup.requests) == 1
    assert backup.requests[0].body["messages"] == MESSAGES, "restarted, not continued"


async def test_f23_restarted_tool_call_keeps_the_assistant_role(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("tool_call_cut"))
    async with serve(two_target_plan(primary, backup)) as gw, asyncio.timeout(EXCHANGE_TIMEOUT):
        async with gw.client.chat.completions.stream(
            model="gpt-4o-mini", messages=MESSAGES, tools=[WEATHER_TOOL]
        ) as events:
            final = await events.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    assert json.loads(calls[0].function.arguments) == WEATHER
    assert choice.message.role == "assistant"
