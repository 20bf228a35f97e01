"""OpenAI chat-completions JSON ↔ canonical: recorded shapes from OpenAI's API reference
(``fixtures/openai_*.json``, each naming its page in ``_source``) translated both ways
with exact expectations, and round-trip properties over generated canonical records.

Known lossy spots (canonical → OpenAI → canonical): an assistant message keeps its text
joined in one part (images in assistant turns and tool results are dropped); all-text
content becomes one string; ``max_completion_tokens`` is sent back as ``max_tokens``; the
finish reason ``error`` has no OpenAI name and reads back as ``stop``; only choice 0 of a
stream.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings

from standby.canonical.chat import (
    ChatRequest,
    ChatResponse,
    Delta,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from standby.providers.statuses import classify
from standby.translate.anthropic import request_to_anthropic, response_to_anthropic
from standby.translate.openai import (
    delta_from_openai,
    delta_to_openai,
    request_from_openai,
    request_to_openai,
    response_from_openai,
    response_to_openai,
)
from tests.translate import strategies

FIXTURES = Path(__file__).parent / "fixtures"
PHOTO = (
    "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-"
    "the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg"
)
SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["location"],
}


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    assert data.pop("_source").startswith("OpenAI")
    return data


def test_request_with_tools_images_and_results_reads_exactly() -> None:
    request = request_from_openai(fixture("openai_request_tools")["body"])
    assert request == ChatRequest(
        model="gpt-4.1",
        messages=(
            Message("developer", (TextPart("You are a helpful assistant."),)),
            Message(
                "user",
                (
                    TextPart("What's in this image, and what's the weather there?"),
                    ImagePart(url=PHOTO, detail="high"),
                    ImagePart(data="/9j/4AAQSkZJRg==", media_type="image/jpeg"),
                ),
            ),
            Message(
                "assistant",
                (),
                (ToolCall("call_abc123", "get_current_weather", '{"location": "Boston, MA"}'),),
            ),
            Message(
                "tool",
                (TextPart('{"temperature": 22, "unit": "celsius"}'),),
                tool_call_id="call_abc123",
            ),
        ),
        tools=(
            Tool("get_current_weather", "Get the current weather in a given location", WEATHER),
        ),
        tool_choice="auto",
        response_format=ResponseFormat("json_schema", name="weather", schema=SCHEMA, strict=True),
        temperature=1.5,
        max_tokens=300,
        stop=("\n\n",),
        stream=True,
        include_usage=True,
        user="user-1234",
        extra={"seed": 42},
    )


def test_request_goes_back_to_openai_with_max_tokens() -> None:
    body = fixture("openai_request_tools")["body"]
    out = request_to_openai(request_from_openai(body))
    expected = dict(body, max_tokens=300)
    del expected["max_completion_tokens"]
    assert out == expected


def test_request_goes_to_anthropic() -> None:
    body = request_to_anthropic(request_from_openai(fixture("openai_request_tools")["body"]))
    assert body == {
        "model": "gpt-4.1",
        "max_tokens": 300,
        "stream": True,
        "temperature": 1.0,  # clamped
        "system": "You are a helpful assistant.\n\nAnswer with one valid JSON value and "
        "nothing else. It must match this JSON schema: " + orjson.dumps(SCHEMA).decode(),
        "metadata": {"user_id": "user-1234"},  # no stop_sequences: Claude refuses blank ones
        "tools": [
            {
                "name": "get_current_weather",
                "input_schema": WEATHER,
                "description": "Get the current weather in a given location",
            }
        ],
        "tool_choice": {"type": "auto"},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's in this image, and what's the weather there?"},
                    {"type": "image", "source": {"type": "url", "url": PHOTO}},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/jpeg",
                            "data": "/9j/4AAQSkZJRg==",
                        },
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "call_abc123",
                        "name": "get_current_weather",
                        "input": {"location": "Boston, MA"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_abc123",
                        "content": [
                            {"type": "text", "text": '{"temperature": 22, "unit": "celsius"}'}
                        ],
                    }
                ],
            },
        ],
    }


def test_legacy_functions_become_tools() -> None:
    request = request_from_openai(
        {
            "model": "m",
            "functions": [{"name": "f"}],
            "function_call": {"name": "f"},
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "f", "arguments": "{}"},
                },
                {"role": "function", "name": "f", "content": "done"},
            ],
        }
    )
    assert request.tools == (Tool("f"),) and request.tool_choice == "f"
    assert request.messages == (
        Message("assistant", (), (ToolCall("call_f", "f", "{}"),)),
        Message("tool", (TextPart("done"),), tool_call_id="call_f", name="f"),
    )
    assert request.extra == {}


def test_text_response_reads_exactly_and_renders_for_claude() -> None:
    body = fixture("openai_response_text")["body"]
    response = response_from_openai(body)
    assert response == ChatResponse(
        "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "gpt-4.1-2025-04-14",
        Message("assistant", (TextPart("Hello! How can I assist you today?"),)),
        "stop",
        Usage(19, 10, 0, 0),
        1741569952,
    )
    assert response_to_anthropic(response, id="msg_1", model="gpt-4.1") == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4.1",
        "content": [{"type": "text", "text": "Hello! How can I assist you today?"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 19, "output_tokens": 10, "cache_read_input_tokens": 0},
    }
    again = response_to_openai(response)
    assert again["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello! How can I assist you today?",
    }
    assert again["usage"] == {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_tool_call_response_reads_exactly_and_renders_for_claude() -> None:
    response = response_from_openai(fixture("openai_response_tool_calls")["body"])
    call = ToolCall("call_abc123", "get_current_weather", '{\n"location": "Boston, MA"\n}')
    assert response.message == Message("assistant", (), (call,))
    assert (response.finish_reason, response.usage) == ("tool_calls", Usage(82, 17, None, 0))
    claude = response_to_anthropic(response, id="msg_2", model="m")
    assert claude["content"] == [
        {
            "type": "tool_use",
            "id": "call_abc123",
            "name": "get_current_weather",
            "input": {"location": "Boston, MA"},
        }
    ]
    assert claude["stop_reason"] == "tool_use"


def test_text_stream_reads_exactly() -> None:
    deltas = [d for c in fixture("openai_stream_text")["chunks"] for d in delta_from_openai(c)]
    assert deltas == [
        Delta(role=True),
        Delta(text="Hello"),
        Delta(text="!"),
        Delta(finish_reason="stop"),
        Delta(usage=Usage(9, 2, 0, 0)),
    ]


def test_tool_call_stream_reads_exactly() -> None:
    deltas = [
        d for c in fixture("openai_stream_tool_calls")["chunks"] for d in delta_from_openai(c)
    ]
    assert deltas[:2] == [
        Delta(role=True),
        Delta(tool_index=0, tool_id="call_DdmO9pD3xa9XTPNJ32zg2hcA", tool_name="get_weather"),
    ]
    assert [d.arguments for d in deltas[2:-1]] == [
        '{"',
        "location",
        '":"',
        "Paris",
        ",",
        " France",
        '"}',
    ]
    assert deltas[-1] == Delta(finish_reason="tool_calls")


def test_error_bodies_classify() -> None:
    for case in fixture("openai_errors")["errors"]:
        error = classify(case["status"], case["body"], {}, target="openai")
        assert error.kind == case["kind"], case
        assert case["body"]["error"]["message"][:40] in error.message


# -- properties ----------------------------------------------------------------------------


def view(message: Message) -> tuple[Any, ...]:
    """What the OpenAI shape keeps of a message."""
    images = (
        ()
        if message.role == "assistant"
        else tuple(p for p in message.parts if isinstance(p, ImagePart))
    )
    return (message.role, message.text, images, message.tool_calls, message.tool_call_id)


@settings(max_examples=150, deadline=None)
@given(strategies.requests())
def test_request_round_trip(request: ChatRequest) -> None:
    body = orjson.loads(orjson.dumps(request_to_openai(request)))
    back = request_from_openai(body)
    assert [view(m) for m in back.messages] == [view(m) for m in request.messages]
    assert back.tools == request.tools
    assert back == ChatRequest(
        **{**{f: getattr(request, f) for f in request.__slots__}, "messages": back.messages}
    )


@settings(max_examples=150, deadline=None)
@given(strategies.responses())
def test_response_round_trip(response: ChatResponse) -> None:
    back = response_from_openai(orjson.loads(orjson.dumps(response_to_openai(response))))
    assert back.message.text == response.message.text
    assert back.message.tool_calls == response.message.tool_calls
    assert (back.usage, back.finish_reason) == (response.usage, response.finish_reason)
    assert (back.id, back.model, back.created) == (response.id, response.model, response.created)


@settings(max_examples=150, deadline=None)
@given(strategies.delta_streams())
def test_stream_round_trip(deltas: list[Delta]) -> None:
    chunks = [
        orjson.loads(orjson.dumps(delta_to_openai(d, id="c", model="m", created=1))) for d in deltas
    ]
    assert strategies.collect(
        [d for c in chunks for d in delta_from_openai(c)]
    ) == strategies.collect(deltas)
