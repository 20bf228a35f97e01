"""Responses API JSON ↔ canonical: requests, answers and the semantic event stream.

Answers and events are validated with the installed ``openai`` SDK's own pydantic models,
so a field the SDK needs cannot go missing unnoticed.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from standby.canonical.chat import (
    ChatResponse,
    Delta,
    FinishReason,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from standby.errors import InvalidRequest
from standby.translate.openai import request_to_openai
from standby.translate.responses import (
    item_id,
    request_from_responses,
    response_from_responses,
    response_to_responses,
    turn_messages,
)
from standby.translate.responses_stream import EventEncoder

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
RID = "resp_0123456789abcdef"
PARAMETERS: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {
    "type": "function",
    "name": "weather",
    "description": "Weather in a city",
    "parameters": PARAMETERS,
    "strict": True,
}


def events_of(data: bytes) -> list[dict[str, Any]]:
    """SSE bytes → event payloads, checking each ``event:`` name against its ``type``."""
    out = []
    for block in data.split(b"\n\n"):
        if not block.strip():
            continue
        name, payload = block.split(b"\n", 1)
        event = orjson.loads(payload.removeprefix(b"data: "))
        assert name == b"event: " + event["type"].encode()
        EVENTS.validate_python(event)  # the SDK's own discriminated union
        out.append(event)
    return out


# -- requests ---------------------------------------------------------------------------------


def test_string_input_and_instructions() -> None:
    request = request_from_responses(
        {
            "model": "m",
            "input": "Hello",
            "instructions": "Be brief.",
            "max_output_tokens": 50,
            "temperature": 0.2,
            "top_p": 0.9,
        }
    )
    assert request.messages == (
        Message("system", (TextPart("Be brief."),)),
        Message("user", (TextPart("Hello"),)),
    )
    assert (request.max_tokens, request.temperature, request.top_p) == (50, 0.2, 0.9)
    assert not request.stream and request.tools == ()


def test_items_tools_and_format() -> None:
    body = {
        "model": "m",
        "stream": True,
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "name": "weather"},
        "text": {
            "format": {
                "type": "json_schema",
                "name": "w",
                "schema": {"type": "object"},
                "strict": True,
            }
        },
        "input": [
            {"role": "developer", "content": "Use tools."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Paris?"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AAAA",
                        "detail": "low",
                    },
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
            },
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ],
    }
    request = request_from_responses(body)
    assert request.messages == (
        Message("developer", (TextPart("Use tools."),)),
        Message(
            "user",
            (TextPart("Paris?"), ImagePart(data="AAAA", media_type="image/png", detail="low")),
        ),
        Message(
            "assistant",
            (TextPart("Checking."),),
            (ToolCall("call_1", "weather", '{"city":"Paris"}'),),
        ),
        Message("tool", (TextPart("18C"),), tool_call_id="call_1"),
    )
    assert request.tools == (Tool("weather", "Weather in a city", PARAMETERS),)
    assert request.tool_choice == "weather"
    assert request.response_format == ResponseFormat("json_schema", "w", {"type": "object"}, True)
    assert request.stream and request.include_usage
    chat = request_to_openai(request)
    assert chat["tools"][0]["function"]["name"] == "weather"  # nested again for chat
    assert chat["messages"][2]["tool_calls"][0]["id"] == "call_1"
    assert chat["messages"][3] == {"role": "tool", "content": "18C", "tool_call_id": "call_1"}
    assert chat["stream_options"] == {"include_usage": True}
    assert "store" not in chat and "metadata" not in chat  # the gateway keeps those


def test_history_goes_between_instructions_and_input() -> None:
    earlier = turn_messages(
        {"input": "first", "instructions": "old rules"},
        {
            "output": [
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "m",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "one", "annotations": []}],
                }
            ]
        },
    )
    request = request_from_responses(
        {"model": "m", "input": "second", "instructions": "new rules"}, earlier
    )
    assert [(m.role, m.text) for m in request.messages] == [
        ("system", "new rules"),
        ("user", "first"),
        ("assistant", "one"),
        ("user", "second"),
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        (
            {
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_file", "file_id": "f"}],
                    }
                ]
            },
            "input[0].content[0]",
        ),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
    ],
)
def test_unsupported_shapes_are_400s(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        request_from_responses({"model": "m", "input": "hi", **body})
    assert caught.value.param == param


# -- answers ----------------------------------------------------------------------------------


def test_answer_with_text_and_calls_is_a_valid_response() -> None:
    answer = ChatResponse(
        "chatcmpl-1",
        "gpt-x",
        Message(
            "assistant",
            (TextPart("Let me check."),),
            (ToolCall("call_1", "weather", '{"city":"Paris"}'),),
        ),
        "tool_calls",
        Usage(10, 5, cached_tokens=2),
    )
    body = {"model": "route", "input": "hi", "tools": [WEATHER], "metadata": {"a": "b"}}
    data = response_to_responses(answer, id=RID, model="gpt-x", request=body, created_at=7)
    parsed = Response.model_validate(data)
    assert parsed.status == "completed" and parsed.output_text == "Let me check."
    assert [item.type for item in parsed.output] == ["message", "function_call"]
    call = parsed.output[1]
    assert call.type == "function_call" and call.call_id == "call_1"
    assert call.id == item_id(RID, "fc", 1)
    assert parsed.usage is not None and parsed.usage.total_tokens == 15
    assert parsed.usage.input_tokens_details.cached_tokens == 2
    assert parsed.tools[0].type == "function" and parsed.metadata == {"a": "b"}


def test_length_stop_is_incomplete() -> None:
    answer = ChatResponse("c", "m", Message("assistant", (TextPart("cut"),)), "length")
    data = response_to_responses(answer, id=RID, model="m", request={}, created_at=0)
    parsed = Response.model_validate(data)
    assert parsed.status == "incomplete"
    assert parsed.incomplete_details is not None
    assert parsed.incomplete_details.reason == "max_output_tokens"
    assert response_from_responses(data).finish_reason == "length"


# -- the event stream -------------------------------------------------------------------------


def encode(deltas: list[Delta], *, fail: str | None = None) -> list[dict[str, Any]]:
    encoder = EventEncoder(id=RID, model="gpt-x", request={"model": "route"}, created_at=1)
    out = encoder.start() + b"".join(encoder.feed(d) for d in deltas)
    out += encoder.fail(fail) if fail is not None else encoder.finish()
    return events_of(out)


def test_text_stream_event_sequence() -> None:
    events = encode(
        [
            Delta(role=True),
            Delta(text="Hel"),
            Delta(text="lo"),
            Delta(finish_reason="stop"),
            Delta(usage=Usage(3, 2)),
        ]
    )
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[6]["text"] == "Hello"
    final = Response.model_validate(events[-1]["response"])
    assert final.output_text == "Hello" and final.usage is not None
    assert final.usage.output_tokens == 2 and final.id == events[0]["response"]["id"] == RID


def test_tool_stream_event_sequence() -> None:
    events = encode(
        [
            Delta(role=True),
            Delta(tool_index=0, tool_id="call_a", tool_name="weather", arguments='{"ci'),
            Delta(tool_index=0, arguments='ty":"Paris"}'),
            Delta(tool_index=1, tool_id="call_b", tool_name="time", arguments="{}"),
            Delta(finish_reason="tool_calls"),
        ]
    )
    kinds = [e["type"] for e in events]
    assert kinds.count("response.function_call_arguments.delta") == 3
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [d["arguments"] for d in done] == ['{"city":"Paris"}', "{}"]
    final = response_from_responses(events[-1]["response"])
    assert final.message.tool_calls == (
        ToolCall("call_a", "weather", '{"city":"Paris"}'),
        ToolCall("call_b", "time", "{}"),
    )


def test_broken_stream_ends_with_response_failed() -> None:
    events = encode([Delta(role=True), Delta(text="Half an ans")], fail="upstream gone")
    assert events[-1]["type"] == "response.failed"
    failed = Response.model_validate(events[-1]["response"])
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.message == "upstream gone"
    item = failed.output[0]
    assert item.type == "message" and item.status == "incomplete"
    assert "response.output_item.done" not in [e["type"] for e in events]


# -- properties -------------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8"), max_size=40)
calls = st.lists(
    st.builds(
        ToolCall,
        st.from_regex(r"call_[a-z0-9]{1,8}", fullmatch=True),
        st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
        texts,
    ),
    max_size=3,
    unique_by=lambda c: c.id,
)
usages = st.builds(
    Usage,
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.none() | st.integers(0, 1000),
    st.none() | st.integers(0, 1000),
)


def same_answer(got: ChatResponse, text: str, tool_calls: list[ToolCall], usage: Usage) -> None:
    assert got.message.text == text
    assert list(got.message.tool_calls) == tool_calls
    assert got.usage is not None
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert (got.usage.cached_tokens, got.usage.reasoning_tokens) == (
        usage.cached_tokens or 0,
        usage.reasoning_tokens or 0,
    )
    assert got.finish_reason == ("tool_calls" if tool_calls else "stop")


@given(texts, calls, usages)
def test_round_trip_keeps_text_calls_and_usage(
    text: str, tool_calls: list[ToolCall], usage: Usage
) -> None:
    finish: FinishReason = "tool_calls" if tool_calls else "stop"
    answer = ChatResponse(
        "c", "m", Message("assistant", (TextPart(text),), tuple(tool_calls)), finish, usage
    )
    data = response_to_responses(answer, id=RID, model="m", request={}, created_at=0)
    Response.model_validate(data)
    same_answer(response_from_responses(orjson.loads(orjson.dumps(data))), text, tool_calls, usage)


@given(st.lists(texts, max_size=5), calls, usages)
def test_stream_round_trip_keeps_text_calls_and_usage(
    pieces: list[str], tool_calls: list[ToolCall], usage: Usage
) -> None:
    deltas = [Delta(role=True), *(Delta(text=p) for p in pieces)]
    for index, call in enumerate(tool_calls):
        half = len(call.arguments) // 2
        deltas += [
            Delta(
                tool_index=index,
                tool_id=call.id,
                tool_name=call.name,
                arguments=call.arguments[:half],
            ),
            Delta(tool_index=index, arguments=call.arguments[half:]),
        ]
    deltas += [Delta(finish_reason="tool_calls" if tool_calls else "stop"), Delta(usage=usage)]
    events = encode(deltas)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    same_answer(response_from_responses(events[-1]["response"]), "".join(pieces), tool_calls, usage)
