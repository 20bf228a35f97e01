"""The official ``anthropic`` SDK against Standby's ``/v1/messages``, whose targets speak
OpenAI's wire: a primary simulated provider with catalogue faults, a healthy backup.

Messages plain and streamed (``text_stream``, events, ``get_final_message``), with a
system prompt, tools and a ``tool_result`` turn; a stream cut mid-answer is continued on
the backup as one message; errors come back in Anthropic's shape as the SDK's own
exception classes.  Every exchange is bounded by ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam, ToolParam

from standby.routing.continuation import INSTRUCTION
from standby.sim import Fault, SimProvider
from standby.testing import running_gateway
from tests.conftest import two_target_plan

TIMEOUT = 15.0
MODEL = "gpt-4o-mini"
HI: list[MessageParam] = [{"role": "user", "content": "hi"}]
WEATHER_TOOL: ToolParam = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
}
ARGUMENTS = {"city": "Paris", "unit": "celsius"}


@contextlib.asynccontextmanager
async def claude(plan: dict[str, Any]) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """A gateway serving ``plan`` and an SDK client for it that never retries by itself."""
    async with running_gateway(plan) as gw:
        client = anthropic.AsyncAnthropic(
            base_url=gw.root_url, api_key="x", max_retries=0, timeout=TIMEOUT
        )
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                yield client
        finally:
            await client.close()


async def test_plain_message_fails_over(primary: SimProvider, backup: SimProvider) -> None:
    primary.set_fault(Fault("error", status=503))
    async with claude(two_target_plan(primary, backup)) as client:
        raw = await client.messages.with_raw_response.create(
            model=MODEL, max_tokens=256, messages=HI
        )
    message = raw.parse()
    assert raw.headers["x-standby-provider"] == "backup"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].type == "text"
    assert message.content[0].text == backup.expected_text()
    assert (message.stop_reason, message.model) == ("end_turn", MODEL)
    assert message.id.startswith("msg_")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (1, 20)
    sent = backup.requests[-1].body
    assert (sent["messages"], sent["max_tokens"]) == ([{"role": "user", "content": "hi"}], 256)


async def test_tools_system_prompt_and_tool_result_turn(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("error", status=503))
    ask: list[MessageParam] = [{"role": "user", "content": "Weather in Paris?"}]
    async with claude(two_target_plan(primary, backup)) as client:
        first = await client.messages.create(
            model=MODEL, max_tokens=256, system="Be terse.", tools=[WEATHER_TOOL], messages=ask
        )
        [call] = first.content
        assert call.type == "tool_use"
        assert (call.id, call.name, call.input) == ("call_sim_1", "get_weather", ARGUMENTS)
        assert first.stop_reason == "tool_use"
        result: MessageParam = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 degrees"}],
        }
        second = await client.messages.create(
            model=MODEL,
            max_tokens=256,
            system="Be terse.",
            tools=[WEATHER_TOOL],
            messages=[*ask, {"role": "assistant", "content": first.content}, result],
        )
    assert second.content[0].type == "text"
    assert second.content[0].text == backup.expected_text()
    sent = backup.requests[-1].body
    assert sent["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_sim_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city":"Paris","unit":"celsius"}',
                    },
                }
            ],
        },
        {"role": "tool", "content": "18 degrees", "tool_call_id": "call_sim_1"},
    ]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city.",
                "parameters": WEATHER_TOOL["input_schema"],
            },
        }
    ]


@pytest.mark.parametrize("backup_kind", ["openai-compatible", "anthropic"])
async def test_stream_cut_mid_answer_is_one_message(
    primary: SimProvider, backup: SimProvider, backup_kind: str
) -> None:
    primary.set_fault(Fault("cut_stream", after=3))
    plan = two_target_plan(primary, backup)
    if backup_kind == "anthropic":  # Claude's own wire continues with a prefill
        plan["providers"]["backup"] = {
            "kind": "anthropic",
            "api_key": "sk-backup-secret",
            "base_url": backup.root_url + "/v1",
        }
    async with (
        claude(plan) as client,
        client.messages.stream(model=MODEL, max_tokens=256, messages=HI) as stream,
    ):
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == primary.expected_text(), "no word lost, none repeated"
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    last = backup.requests[-1].body["messages"][-1]
    if backup_kind == "anthropic":
        assert last == {
            "role": "assistant",
            "content": [{"type": "text", "text": "Standby keeps answering"}],
        }
    else:
        assert last == {"role": "user", "content": INSTRUCTION}


@pytest.mark.parametrize(
    "fault",
    [Fault("error", status=503), Fault("tool_call_cut", after=3)],
    ids=["failover", "cut-mid-arguments"],
)
async def test_streamed_tool_call(primary: SimProvider, backup: SimProvider, fault: Fault) -> None:
    primary.set_fault(fault)
    async with (
        claude(two_target_plan(primary, backup)) as client,
        client.messages.stream(
            model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=HI
        ) as stream,
    ):
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    [call] = final.content
    assert call.type == "tool_use"
    assert (call.id, call.name, call.input) == ("call_sim_1", "get_weather", ARGUMENTS)
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (1, 6)
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("message_start") == 1 and kinds.count("content_block_start") == 1


async def test_errors_come_in_anthropic_shape(primary: SimProvider, backup: SimProvider) -> None:
    async with claude(two_target_plan(primary, backup)) as client:
        with pytest.raises(anthropic.NotFoundError) as missing:
            await client.messages.create(model="no-such-model", max_tokens=16, messages=HI)
        with pytest.raises(anthropic.BadRequestError) as bad:
            await client.messages.create(model=MODEL, max_tokens=0, messages=HI)
        malformed: Any = [{"role": "user", "content": [{"type": "image", "source": "x"}]}]
        with pytest.raises(anthropic.BadRequestError) as shapeless:
            await client.messages.create(model=MODEL, max_tokens=16, messages=malformed)
        attempted = len(primary.requests) + len(backup.requests)
        primary.set_fault(Fault("error", status=503))
        backup.set_fault(Fault("error", status=503))
        with pytest.raises(anthropic.APIStatusError) as down:
            await client.messages.create(model=MODEL, max_tokens=16, messages=HI)
        with pytest.raises(anthropic.APIStatusError) as down_streaming:
            async with client.messages.stream(model=MODEL, max_tokens=16, messages=HI) as stream:
                await stream.get_final_message()
    assert missing.value.status_code == 404
    assert _error_type(missing.value) == "not_found_error"
    assert "no-such-model" in missing.value.message
    assert bad.value.status_code == 400 and _error_type(bad.value) == "invalid_request_error"
    assert "max_tokens" in bad.value.message
    assert _error_type(shapeless.value) == "invalid_request_error"
    assert attempted == 0, "bad requests are refused before any attempt"
    for error in (down.value, down_streaming.value):
        assert error.status_code == 529 and _error_type(error) == "overloaded_error"
        assert int(error.response.headers["retry-after"]) >= 1


async def test_stream_nothing_can_continue_ends_with_an_error_event(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("cut_stream", after=3))
    backup.set_fault(Fault("error", status=503))
    text = ""
    async with claude(two_target_plan(primary, backup)) as client:
        with pytest.raises(anthropic.APIStatusError) as broken:
            async with client.messages.stream(model=MODEL, max_tokens=256, messages=HI) as stream:
                async for piece in stream.text_stream:
                    text += piece
    assert text == "Standby keeps answering", "what was sent stays; nothing is presented as done"
    assert _error_type(broken.value) == "overloaded_error"


def _error_type(error: anthropic.APIStatusError) -> str:
    body: Any = error.body
    assert isinstance(body, dict) and body.get("type") == "error", body
    return str(body["error"]["type"])
