"""Failing over from an OpenAI-wire provider to Gemini, and Gemini's own refusals.

The official ``openai`` SDK talks to the real gateway; the primary is a simulated
OpenAI-wire provider, the backup a simulated provider on its Gemini wire
(``/v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``) reached
through the ``gemini`` adapter: plain and streamed answers, tool calls, a stream cut
mid-answer and continued by Gemini, and a prompt Gemini blocks for safety (F14).
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from standby.sim import Fault, SimProvider
from tests.conftest import two_target_plan
from tests.e2e.faults_support import MESSAGES, SECRETS, WEATHER_TOOL, serve

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
GEMINI_MODEL = "gemini-2.0-flash"
GEMINI_KEY = "gm-backup-secret"


def gemini_plan(
    primary: SimProvider, backup: SimProvider, *, gemini_first: bool = False
) -> dict[str, Any]:
    """``primary`` on the OpenAI wire, ``backup`` on the Gemini wire (first if asked)."""
    plan = two_target_plan(primary, backup)
    plan["providers"]["backup"] = {
        "kind": "gemini",
        "base_url": backup.root_url + "/v1beta",
        "api_key": GEMINI_KEY,
    }
    targets = ["primary/gpt-4o-mini", f"backup/{GEMINI_MODEL}"]
    plan["routes"] = {"gpt-4o-mini": {"targets": targets[::-1] if gemini_first else targets}}
    return plan


def gemini_requests(sim: SimProvider) -> list[dict[str, Any]]:
    """The bodies of the requests ``sim`` saw on its Gemini wire, checking each one's
    path and key (and that no other provider's key reached it)."""
    bodies = []
    for seen in sim.requests:
        assert seen.path.startswith(f"/v1beta/models/{GEMINI_MODEL}:"), seen.path
        assert seen.headers.get("x-goog-api-key") == GEMINI_KEY
        assert not any(secret in str(seen.headers) for secret in SECRETS)
        bodies.append(seen.body)
    return bodies


@STREAMS
async def test_a_dead_primary_is_answered_by_gemini(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("error", status=503))
    async with serve(gemini_plan(primary, backup)) as gw:
        extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if stream else {}
        got = await gw.ask(stream=stream, **extra)
    assert got.text == backup.expected_text()
    assert got.model == GEMINI_MODEL, "the answer names the model that gave it (F17)"
    assert got.provider == "backup" and got.finish_reason == "stop"
    assert got.roles == ["assistant"] and len(set(got.ids)) == 1
    assert got.usage is not None and got.usage.completion_tokens == backup.words
    assert got.usage.total_tokens == got.usage.prompt_tokens + got.usage.completion_tokens
    [body] = gemini_requests(backup)
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]


@STREAMS
async def test_tool_calls_come_back_from_gemini(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    primary.set_fault(Fault("error", status=503))
    async with serve(gemini_plan(primary, backup)) as gw:
        got = await gw.ask(stream=stream, tools=[WEATHER_TOOL], tool_choice="required")
    assert got.finish_reason == "tool_calls" and got.model == GEMINI_MODEL
    [call] = got.tool_calls.values()
    assert call["name"] == "get_weather" and call["id"] == "call_0"
    assert json.loads(call["arguments"]) == {"city": "Paris", "unit": "celsius"}
    [body] = gemini_requests(backup)
    [declaration] = body["tools"][0]["functionDeclarations"]
    assert declaration["name"] == "get_weather"
    assert declaration["parameters"]["properties"]["city"] == {"type": "STRING"}
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


async def test_a_tool_result_goes_back_to_gemini_by_name(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("error", status=503))
    history: list[Any] = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_from_openai",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_from_openai", "content": "sunny"},
    ]
    async with serve(gemini_plan(primary, backup)) as gw:
        got = await gw.ask(stream=False, messages=history, tools=[WEATHER_TOOL])
    assert got.text == backup.expected_text() and got.finish_reason == "stop"
    [body] = gemini_requests(backup)
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}
    ]


@pytest.mark.parametrize("after", [1, 3, 12])
async def test_a_cut_stream_is_continued_by_gemini(
    primary: SimProvider, backup: SimProvider, after: int
) -> None:
    primary.set_fault(Fault("cut_stream", after=after))
    async with serve(gemini_plan(primary, backup)) as gw:
        got = await gw.ask(stream=True)
    assert got.text == primary.expected_text(), "no word lost, none repeated"
    assert len(set(got.ids)) == 1 and got.roles == ["assistant"]
    assert got.finish_reason == "stop"
    [body] = gemini_requests(backup)
    sent = " ".join(primary.expected_text().split()[:after])
    roles = [c["role"] for c in body["contents"]]
    assert roles == ["user", "model", "user"], "continued by instruction (no prefill)"
    assert body["contents"][1]["parts"] == [{"text": sent}]
    assert "continue" in body["contents"][2]["parts"][0]["text"].lower()


@STREAMS
async def test_a_gemini_safety_block_is_final(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    backup.set_fault(Fault("content_policy"))
    async with serve(gemini_plan(primary, backup, gemini_first=True)) as gw:
        with pytest.raises(openai.BadRequestError) as caught:
            await gw.ask(stream=stream)
    assert caught.value.status_code == 400
    assert caught.value.code == "content_policy_violation"
    assert "SAFETY" in caught.value.message
    assert len(gemini_requests(backup)) == 1, "a blocked prompt is not retried"
    assert primary.requests == [], "nor sent elsewhere (F14)"


async def test_a_gemini_outage_fails_over_to_openai(
    primary: SimProvider, backup: SimProvider
) -> None:
    backup.set_fault(Fault("error", status=503))
    async with serve(gemini_plan(primary, backup, gemini_first=True)) as gw:
        got = await gw.ask(stream=True)
    assert got.text == primary.expected_text() and got.provider == "primary"
    assert len(gemini_requests(backup)) == 1, "a 503 UNAVAILABLE fails over at once"
