"""The official ``openai`` SDK against Standby, whose primary is an OpenAI-wire simulated
provider with catalogue faults and whose backup is a provider of kind ``anthropic``
pointed at a simulated provider's Messages API: the gateway's Anthropic adapter carries
the request across vendors and brings the answer back in OpenAI's shape.

Plain and streamed, with and without tools; a stream cut mid-answer on the primary is
completed by the Anthropic-wire backup with an assistant prefill, as one stream with one
id.  Every exchange is bounded (``faults_support.EXCHANGE_TIMEOUT``).
"""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from standby.sim import Fault, SimProvider
from tests.conftest import two_target_plan
from tests.e2e.faults_support import WEATHER_TOOL, serve

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
WEATHER = {"city": "Paris", "unit": "celsius"}
USAGE: dict[str, Any] = {"stream_options": {"include_usage": True}}


def claude_backup_plan(primary: SimProvider, backup: SimProvider) -> dict[str, Any]:
    """primary (OpenAI wire) → backup (kind ``anthropic``, the sim's ``/v1/messages``)."""
    plan = two_target_plan(primary, backup)
    plan["providers"]["backup"] = {
        "kind": "anthropic",
        "base_url": backup.root_url + "/v1",
        "api_key": "sk-backup-secret",
    }
    return plan


@STREAMS
async def test_text_fails_over_to_claude_wire(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("error", status=503))
    async with serve(claude_backup_plan(primary, backup)) as gw:
        got = await gw.ask(stream=stream, **(USAGE if stream else {}))
    assert (got.provider, got.model) == ("backup", "gpt-4o-mini")
    assert got.text == backup.expected_text()
    assert got.finish_reason == "stop" and got.roles == ["assistant"]
    assert len(set(got.ids)) == 1
    assert got.usage is not None
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (1, 20)
    sent = backup.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-backup-secret" and sent.headers["anthropic-version"]
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert sent.body["max_tokens"] == 4096, "the plan's default: Claude requires one"
    assert sent.body.get("stream", False) is stream


@STREAMS
async def test_tool_call_fails_over_to_claude_wire(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("error", status=503))
    async with serve(claude_backup_plan(primary, backup)) as gw:
        got = await gw.ask(stream=stream, tools=[WEATHER_TOOL], tool_choice="auto")
    assert got.provider == "backup" and got.finish_reason == "tool_calls"
    [call] = got.tool_calls.values()
    assert (call["id"], call["name"]) == ("toolu_sim_1", "get_weather")
    assert orjson.loads(call["arguments"]) == WEATHER
    assert got.text == ""
    sent = backup.requests[-1].body
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert sent["tool_choice"] == {"type": "auto"}


async def test_tool_result_turn_reaches_claude_as_blocks(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("error", status=503))
    messages: list[Any] = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_sim_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": orjson.dumps(WEATHER).decode(),
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_sim_1", "content": "18 degrees"},
    ]
    async with serve(claude_backup_plan(primary, backup)) as gw:
        got = await gw.ask(stream=False, messages=messages, tools=[WEATHER_TOOL])
    assert got.text == backup.expected_text() and got.finish_reason == "stop"
    sent = backup.requests[-1].body
    assert sent["system"] == "Be terse."
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_sim_1", "name": "get_weather", "input": WEATHER}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_sim_1",
                    "content": [{"type": "text", "text": "18 degrees"}],
                }
            ],
        },
    ]


@pytest.mark.parametrize("overlap", [0, 10], ids=["exact", "overlapping"])
async def test_stream_cut_mid_answer_is_continued_by_claude_wire(
    primary: SimProvider, overlap: int
) -> None:
    primary.set_fault(Fault("cut_stream", after=3))
    async with (
        SimProvider("backup", overlap=overlap) as backup,
        serve(claude_backup_plan(primary, backup)) as gw,
    ):
        got = await gw.ask(stream=True, **USAGE)
    assert got.text == primary.expected_text(), "no word lost, none repeated"
    assert len(set(got.ids)) == 1, "one stream, one id"
    assert got.roles == ["assistant"] and got.finish_reason == "stop"
    sent = backup.requests[-1].body
    assert sent["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Standby keeps answering"}],
    }, "continued with a prefill"


async def test_claude_wire_errors_fail_over_and_exhaust_cleanly(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("error", status=503))
    backup.set_fault(Fault("error", status=529))
    async with serve(claude_backup_plan(primary, backup)) as gw:
        with pytest.raises(openai.APIStatusError) as down:
            await gw.ask(stream=False)
        backup.set_fault(Fault("error_body_200"))  # a 200 whose stream is an error event
        with pytest.raises(openai.APIStatusError) as broken:
            await gw.ask(stream=True)
    for error in (down.value, broken.value):
        assert error.status_code == 503
        assert error.response.json()["error"]["code"] == "upstream_unavailable"
    assert {r.fault for r in backup.requests} == {"error", "error_body_200"}
