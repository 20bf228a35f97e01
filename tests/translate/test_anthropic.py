"""Anthropic Messages JSON and stream events ↔ canonical: recorded shapes from Anthropic's
API reference (``fixtures/anthropic_*.json``, each naming its page in ``_source``)
translated both ways with exact expectations, and round-trip properties.

Known lossy spots (canonical → Anthropic → canonical):
* system and developer messages merge into one leading system prompt (joined by a blank
  line), and consecutive user turns merge into one (the API wants alternating turns);
* ``temperature`` is clamped to 1.0 (Claude's range is 0..1); ``n``, ``response_format``
  (asked for in the system prompt instead), image ``detail``, tool-result names, vendor
  extras other than ``parallel_tool_calls`` and whitespace-only stop sequences are lost;
* tool-call arguments come back as the same JSON value, re-serialised (not byte-equal);
* usage keeps prompt, completion and cached tokens, not reasoning tokens;
* the finish reason ``error`` has no Claude name and reads back as ``stop``; ``stop``
  with tool calls is sent as ``tool_use`` (Claude's clients run tools only on that);
* a final assistant prefill loses its trailing whitespace (Claude refuses it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from standby.canonical import Call
from standby.canonical.chat import (
    ChatRequest,
    ChatResponse,
    Delta,
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from standby.plan.model import ProviderConfig
from standby.providers.anthropic import AnthropicProvider
from standby.providers.statuses import classify
from standby.translate.anthropic import (
    prefill_trimmed,
    request_from_anthropic,
    request_to_anthropic,
    response_from_anthropic,
    response_to_anthropic,
)
from standby.translate.anthropic_stream import EventDecoder, EventEncoder, StreamError
from standby.translate.openai import delta_from_openai, delta_to_openai, request_to_openai
from standby.web.anthropic_api import anthropic_error
from tests.translate import strategies
from tests.translate.test_openai import fixture as openai_fixture

FIXTURES = Path(__file__).parent / "fixtures"
ANT = "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"
TOOL_ID = "toolu_01A09q90qw90lq917835lq9"
SF = '{"location":"San Francisco, CA","unit":"celsius"}'


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    assert data.pop("_source").startswith("Anthropic")
    return data


def events(data: bytes) -> list[dict[str, Any]]:
    """Anthropic SSE bytes → the events' data, checking each ``event:`` name."""
    out = []
    for block in data.decode().split("\n\n"):
        if block:
            name, payload = block.split("\n")
            out.append(json.loads(payload.removeprefix("data: ")))
            assert name == f"event: {out[-1]['type']}"
    return out


def test_request_with_system_images_tools_and_results_reads_exactly() -> None:
    body = fixture("anthropic_request_tools")["body"]
    request = request_from_anthropic(body)
    assert request == ChatRequest(
        model="claude-sonnet-4-5",
        messages=(
            Message(
                "system",
                (
                    TextPart(
                        "You are a concise weather assistant.\n\nAlways answer "
                        "in the unit asked for."
                    ),
                ),
            ),
            Message(
                "user",
                (
                    ImagePart(data="/9j/4AAQSkZJRg==", media_type="image/jpeg"),
                    ImagePart(url=ANT),
                    TextPart("Where was the first photo taken, and what is the weather there now?"),
                ),
            ),
            Message(
                "assistant",
                (TextPart("That is San Francisco. Let me check the weather."),),
                (ToolCall(TOOL_ID, "get_weather", SF),),
            ),
            Message("tool", (TextPart("15 degrees"),), tool_call_id=TOOL_ID),
            Message("user", (TextPart("And in Fahrenheit?"),)),
        ),
        tools=(
            Tool(
                "get_weather",
                "Get the current weather in a given location",
                body["tools"][0]["input_schema"],
            ),
        ),
        tool_choice="auto",
        temperature=0.2,
        max_tokens=1024,
        stop=("\n\nHuman:",),
        user="user-1234",
        extra={"parallel_tool_calls": False},
    )
    again = request_to_anthropic(request)
    turns = body["messages"]
    turns[2]["content"][0]["content"] = [{"type": "text", "text": "15 degrees"}]
    assert again == {**body, "system": request.messages[0].text}  # cache_control dropped
    openai = request_to_openai(request)
    assert openai["messages"][1]["content"][0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="},
    }
    assert openai["messages"][2:4] == [
        {
            "role": "assistant",
            "content": "That is San Francisco. Let me check the weather.",
            "tool_calls": [
                {
                    "id": TOOL_ID,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": SF},
                }
            ],
        },
        {"role": "tool", "content": "15 degrees", "tool_call_id": TOOL_ID},
    ]
    assert (openai["tool_choice"], openai["parallel_tool_calls"]) == ("auto", False)


def test_text_response_counts_cache_reads_in_the_prompt() -> None:
    response = response_from_anthropic(fixture("anthropic_response_text")["body"])
    assert response == ChatResponse(
        "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "claude-sonnet-4-5-20250929",
        Message("assistant", (TextPart("Hi! My name is Claude."),)),
        "stop",
        Usage(2095 + 1800, 503, 1800),
    )
    out = response_to_anthropic(response, id=response.id, model=response.model)
    assert out["usage"] == {
        "input_tokens": 2095,
        "output_tokens": 503,
        "cache_read_input_tokens": 1800,
    }


def test_tool_use_response_reads_exactly() -> None:
    body = fixture("anthropic_response_tool_use")["body"]
    response = response_from_anthropic(body)
    assert response.message == Message(
        "assistant",
        (TextPart("I'll check the current weather in San Francisco for you."),),
        (ToolCall(TOOL_ID, "get_weather", SF),),
    )
    assert (response.finish_reason, response.usage) == ("tool_calls", Usage(384, 89))
    out = response_to_anthropic(response, id=body["id"], model=body["model"])
    assert out == {**body, "usage": {"input_tokens": 384, "output_tokens": 89}}


def test_text_stream_decodes_exactly() -> None:
    decoder = EventDecoder()
    deltas = [d for e in fixture("anthropic_stream_text")["events"] for d in decoder.feed(e)]
    assert deltas == [
        Delta(role=True),
        Delta(text="Hello"),
        Delta(text="!"),
        Delta(finish_reason="stop"),
        Delta(usage=Usage(25, 15)),
    ]
    chunk = delta_to_openai(deltas[1], id=decoder.id, model=decoder.model, created=7)
    assert chunk == {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "claude-sonnet-4-5-20250929",
        "choices": [
            {"index": 0, "delta": {"content": "Hello"}, "logprobs": None, "finish_reason": None}
        ],
    }


def test_tool_use_stream_decodes_input_json_deltas() -> None:
    decoder = EventDecoder()
    deltas = [d for e in fixture("anthropic_stream_tool_use")["events"] for d in decoder.feed(e)]
    seen = strategies.collect(deltas)
    assert seen["text"] == "Okay, let's check the weather for San Francisco, CA:"
    assert seen["calls"] == {
        0: {
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "arguments": '{"location": "San Francisco, CA", "unit": "fahrenheit"}',
        }
    }
    assert (seen["finish"], seen["usage"]) == ("tool_calls", Usage(472, 89, 0))
    first = delta_to_openai(deltas[3], id="c", model="m", created=1)["choices"][0]["delta"]
    assert first == {
        "tool_calls": [
            {
                "index": 0,
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "type": "function",
                "function": {"arguments": "", "name": "get_weather"},
            }
        ]
    }


def test_openai_stream_encodes_as_claude_events() -> None:
    chunks = openai_fixture("openai_stream_tool_calls")["chunks"]
    encoder = EventEncoder(id="msg_x", model="gpt-4.1")
    out = b"".join(encoder.feed(d) for c in chunks for d in delta_from_openai(c))
    got = events(out + encoder.finish())
    assert [e["type"] for e in got] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 7,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert got[1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {
            "type": "tool_use",
            "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
            "name": "get_weather",
            "input": {},
        },
    }
    assert "".join(e["delta"]["partial_json"] for e in got[2:9]) == '{"location":"Paris, France"}'
    assert got[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}


def test_a_tool_call_finished_with_stop_is_tool_use_for_claude() -> None:
    encoder = EventEncoder(id="msg_t", model="m")
    encoder.feed(Delta(tool_index=0, tool_id="call_1", tool_name="f", arguments="{}"))
    encoder.feed(Delta(finish_reason="stop"))
    encoder.feed(Delta(usage=Usage(12, 3, 2)))
    assert events(encoder.finish())[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 2},
    }


def test_error_bodies_classify_and_render_in_claude_shape() -> None:
    data = fixture("anthropic_errors")
    for case in data["errors"]:
        error = classify(case["status"], case["body"], {}, target="claude")
        assert error.kind == case["kind"], case
        message = case["body"]["error"]["message"]
        assert orjson.loads(anthropic_error(case["status"], message)) == {
            "type": "error",
            "error": case["body"]["error"],
        }
    with pytest.raises(StreamError) as raised:
        EventDecoder().feed(data["stream_error"])
    assert raised.value.kind == "overloaded_error"


def test_prefill_loses_trailing_whitespace() -> None:
    request = ChatRequest(
        "m", (Message("user", (TextPart("Hi"),)), Message("assistant", (TextPart("Hello, "),)))
    )
    assert prefill_trimmed(request)
    assert request_to_anthropic(request)["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello,"}],
    }


def test_adapter_trims_a_prefill_and_the_continuations_leading_space() -> None:
    config = ProviderConfig(kind="anthropic", base_url="http://claude.test/v1", api_key="k")
    provider = AnthropicProvider("claude", config)
    call = Call(
        "chat",
        {
            "model": "claude-x",
            "stream": True,
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello, "},
            ],
        },
        stream=True,
        continuation=True,
    )
    url, body = provider.request(call)
    assert url == "http://claude.test/v1/messages"
    assert orjson.loads(body)["messages"][-1]["content"] == [{"type": "text", "text": "Hello,"}]
    translate = provider.translator(call)
    text = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        for piece in (" ", " world", "!")
    ]
    stream: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_c", "model": "claude-x"}},
        *text,
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}},
    ]
    chunks = [chunk for event in stream for _, chunk in translate(event)]
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "world", "!", None]
    reply = provider.reply(
        call,
        b"",
        {
            "type": "message",
            "content": [{"type": "text", "text": " world!"}],
            "stop_reason": "end_turn",
        },
    )
    assert reply.data["choices"][0]["message"]["content"] == "world!"


# -- properties ----------------------------------------------------------------------------


def view(messages: tuple[Message, ...]) -> list[tuple[Any, ...]]:
    """What the Anthropic shape keeps: one system text, user turns merged, images without
    ``detail``, tool calls with parsed arguments."""
    out: list[tuple[Any, ...]] = []
    system = "\n\n".join(m.text for m in messages if m.role in ("system", "developer"))
    if system:
        out.append(("system", system, (), (), None))
    for m in messages:
        if m.role in ("system", "developer"):
            continue
        parts = tuple(
            (p.text,) if isinstance(p, TextPart) else (p.url, p.data, p.media_type) for p in m.parts
        )
        calls = tuple((c.id, c.name, orjson.loads(c.arguments)) for c in m.tool_calls)
        if out and m.role == "user" and out[-1][0] == "user":
            out[-1] = ("user", None, out[-1][2] + parts, (), None)
        else:
            out.append((m.role, None, parts, calls, m.tool_call_id))
    return out


@settings(max_examples=150, deadline=None)
@given(strategies.requests())
def test_request_round_trip(request: ChatRequest) -> None:
    back = request_from_anthropic(orjson.loads(orjson.dumps(request_to_anthropic(request))))
    assert view(back.messages) == view(request.messages)
    assert back.tools == request.tools and back.tool_choice == request.tool_choice
    temperature = None if request.temperature is None else min(request.temperature, 1.0)
    assert (back.temperature, back.top_p) == (temperature, request.top_p)
    assert back.max_tokens == (request.max_tokens or 4096)
    assert back.stop == tuple(s for s in request.stop if s.strip())
    assert (back.user, back.stream, back.model) == (request.user, request.stream, request.model)


@settings(max_examples=150, deadline=None)
@given(strategies.responses())
def test_response_round_trip(response: ChatResponse) -> None:
    out = response_to_anthropic(response, id=response.id, model=response.model)
    back = response_from_anthropic(orjson.loads(orjson.dumps(out)))
    assert back.message.text == response.message.text
    assert view((back.message,)) == view((response.message,))
    calls, finish = response.message.tool_calls, response.finish_reason
    assert back.finish_reason == ("tool_calls" if calls and finish == "stop" else finish)
    usage = response.usage or Usage()
    assert back.usage == Usage(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)


@settings(max_examples=150, deadline=None)
@given(strategies.delta_streams())
def test_stream_round_trip(deltas: list[Delta]) -> None:
    encoder = EventEncoder(id="msg_p", model="m")
    got = events(b"".join(encoder.feed(d) for d in deltas) + encoder.finish())
    kinds = [e["type"] for e in got]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    opened = [e["index"] for e in got if e["type"] == "content_block_start"]
    closed = [e["index"] for e in got if e["type"] == "content_block_stop"]
    assert opened == closed == list(range(len(opened)))
    decoder = EventDecoder()
    back = strategies.collect([d for e in got for d in decoder.feed(e)])
    sent = strategies.collect(deltas)
    usage = sent["usage"]
    sent["usage"] = Usage(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
    assert back == sent
