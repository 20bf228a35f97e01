"""Gemini translation: fixtures of Google's documented payload shapes, the adapter's
request/reply/stream edges, error classification, and round-trip properties.

Fixtures (``fixtures/gemini_*.json``) name their source page in ``_source``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from standby.canonical import Call
from standby.canonical.chat import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    TextPart,
    ToolCall,
    Usage,
)
from standby.errors import MalformedReply, UpstreamStatus
from standby.plan.model import ProviderConfig
from standby.providers.gemini import GeminiProvider
from standby.providers.statuses import classify
from standby.translate.gemini import (
    SCHEMA_KEYS,
    gemini_schema,
    request_from_gemini,
    request_to_gemini,
)
from standby.translate.gemini_stream import StreamDecoder, response_from_gemini, response_to_gemini
from standby.translate.openai import request_from_openai

FIXTURES = Path(__file__).parent / "fixtures"
BASE = "https://generativelanguage.googleapis.com/v1beta"
KEY = "gm-test-key-123"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"gemini_{name}.json").read_text())
    assert data["_source"].startswith(("Gemini", "Google"))
    return data


def provider() -> GeminiProvider:
    return GeminiProvider("gem", ProviderConfig(kind="gemini", base_url=BASE, api_key=KEY))


def chat(body: dict[str, Any], stream: bool = False) -> Call:
    return Call(endpoint="chat", body=body, stream=stream)


def collect(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenAI chunks (or replies), assembled as a client would."""
    got: dict[str, Any] = {
        "text": "",
        "tool_calls": {},
        "finish": [],
        "usage": None,
        "ids": set(),
        "models": set(),
        "roles": 0,
    }
    for chunk in chunks:
        got["ids"].add(chunk["id"])
        got["models"].add(chunk["model"])
        got["usage"] = chunk.get("usage") or got["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"] if "delta" in choice else choice["message"]
            got["roles"] += delta.get("role") == "assistant"
            got["text"] += delta.get("content") or ""
            for index, call in enumerate(delta.get("tool_calls") or []):
                got["tool_calls"][call.get("index", index)] = {
                    "id": call["id"],
                    "name": call["function"]["name"],
                    "arguments": json.loads(call["function"]["arguments"]),
                }
            if choice["finish_reason"]:
                got["finish"].append(choice["finish_reason"])
    return got


# -- fixtures: requests ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["request_function_calling", "request_multimodal_json"])
def test_request_matches_the_documented_gemini_body(name: str) -> None:
    data = fixture(name)
    url, body = provider().request(chat(data["openai"]))
    assert orjson.loads(body) == data["gemini"]
    assert url == f"{BASE}/models/{data['openai']['model']}:generateContent"


def test_urls_headers_and_tool_choices() -> None:
    gem = provider()
    url, _ = gem.request(chat({"model": "models/gemini-2.0-flash", "messages": []}, stream=True))
    assert url == f"{BASE}/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    assert gem._headers["x-goog-api-key"] == KEY and not gem.prefill and KEY not in repr(gem)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    for choice, config in [
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "f"}},
            {"mode": "ANY", "allowedFunctionNames": ["f"]},
        ),
    ]:
        body = request_to_gemini(
            request_from_openai(
                {"model": "m", "messages": [], "tools": tools, "tool_choice": choice}
            )
        )
        assert body["toolConfig"] == {"functionCallingConfig": config}
        assert body["tools"] == [{"functionDeclarations": [{"name": "f"}]}]  # no empty OBJECT
    with pytest.raises(MalformedReply, match="embeddings"):
        gem.request(Call(endpoint="embeddings", body={"model": "m", "input": "x"}))


# -- fixtures: answers ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["response_text", "response_function_call"])
def test_answers_become_openai_replies(name: str) -> None:
    """Thought parts are skipped, reasoning counted, function calls become tool calls."""
    data = fixture(name)
    expected = data["expected"]
    reply = provider().reply(chat({"model": expected["model"]}), b"", data["response"])
    assert reply.data["id"] == expected.get("id", reply.data["id"]) and reply.data["id"]
    choice, calls = reply.data["choices"][0], collect([reply.data])["tool_calls"]
    assert (reply.model, choice["message"]["content"], choice["finish_reason"], reply.usage) == (
        expected["model"],
        expected["text"],
        expected["finish_reason"],
        expected["usage"],
    )
    assert list(calls.values()) == expected.get("tool_calls", [])
    assert orjson.loads(reply.raw) == reply.data


def test_candidates_become_choices() -> None:
    two = {
        "candidates": [
            {"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"},
            {"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS", "index": 1},
        ]
    }
    choices = provider().reply(chat({"model": "g"}), b"", two).data["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [
        (0, "a", "stop"),
        (1, "b", "length"),
    ]
    with pytest.raises(MalformedReply, match="no candidates"):
        provider().reply(chat({"model": "g"}), b"", {"usageMetadata": {}})
    streamed = [c["choices"][0] for _, c in provider().translator(chat({}, stream=True))(two)]
    assert [(c["index"], c["delta"].get("content"), c["finish_reason"]) for c in streamed] == [
        (0, "a", None),
        (0, None, "stop"),
        (1, "b", None),
        (1, None, "length"),
    ]


def test_a_blocked_prompt_is_a_final_content_policy_error() -> None:
    data, gem = fixture("response_blocked"), provider()
    expected = data["expected"]
    for attempt in (
        lambda: gem.reply(chat({"model": "g"}), b"", data["response"]),
        lambda: gem.translator(chat({"model": "g"}, True))(data["response"]),
    ):
        with pytest.raises(UpstreamStatus) as caught:
            attempt()
        assert (caught.value.status, caught.value.kind) == (expected["status"], expected["kind"])
        assert expected["block_reason"] in (caught.value.body or {})["error"]["message"]


@pytest.mark.parametrize("case", fixture("errors")["cases"], ids=lambda c: c["name"])
def test_gemini_errors_are_classified(case: dict[str, Any]) -> None:
    assert classify(case["status"], case["body"], {}).kind == case["kind"]


# -- fixtures: streams ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["text", "function_call", "safety"])
@pytest.mark.parametrize("usage", [True, False], ids=["usage", "no-usage"])
def test_stream_events_become_openai_chunks(name: str, usage: bool) -> None:
    stream = fixture("stream")["streams"][name]
    body = {"model": "gemini-2.0-flash", "stream_options": {"include_usage": usage}}
    translate = provider().translator(chat(body, stream=True))
    chunks = [chunk for event in stream["events"] for _, chunk in translate(event)]
    got, expected = collect(chunks), stream["expected"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant" and got["roles"] == 1
    assert got["text"] == expected["text"] and got["finish"] == [expected["finish_reason"]]
    assert list(got["tool_calls"].values()) == expected.get("tool_calls", [])
    assert got["usage"] == (expected["usage"] if usage else None)
    assert got["ids"] == {expected.get("id", chunks[0]["id"])}
    assert got["models"] == {expected["model"]}


# -- properties: canonical → Gemini → canonical -----------------------------------------------

TEXT = st.text(min_size=1, max_size=30)
COUNT = st.integers(0, 10**7)
NAME = st.from_regex(r"[a-z_][a-z0-9_]{0,11}", fullmatch=True)
SCALAR = st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=8)
JSON = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
ARGS = st.dictionaries(st.text(min_size=1, max_size=6), JSON, max_size=4)


@st.composite
def calls(draw: st.DrawFn, prefix: str) -> tuple[ToolCall, ...]:
    return tuple(
        ToolCall(f"{prefix}{n}", name, orjson.dumps(draw(ARGS)).decode())
        for n, name in enumerate(draw(st.lists(NAME, max_size=3)))
    )


@st.composite
def requests(draw: st.DrawFn) -> ChatRequest:
    messages = [Message("system", (TextPart(draw(TEXT)),))] if draw(st.booleans()) else []
    for turn in range(draw(st.integers(1, 4))):
        messages.append(Message("user", (TextPart(draw(TEXT)),)))
        made, text = draw(calls(f"id{turn}_")), draw(st.just("") | TEXT)
        messages.append(Message("assistant", (TextPart(text),) if text else (), made))
        messages.extend(Message("tool", (TextPart(draw(TEXT)),), tool_call_id=c.id) for c in made)
    return ChatRequest(model="m", messages=tuple(messages))


def _json_or_text(text: str) -> Any:
    with contextlib.suppress(ValueError):
        if isinstance(value := json.loads(text), dict):
            return value
    return text


def view(request: ChatRequest) -> tuple[str, list[tuple[Any, ...]]]:
    """What must survive: system text, user text, answers, calls, and results by name."""
    names: dict[str, str] = {}
    out: list[tuple[Any, ...]] = []
    for m in request.messages:
        names.update((c.id, c.name) for c in m.tool_calls)
        if m.role == "tool":
            item: tuple[Any, ...] = ("tool", names[m.tool_call_id or ""], _json_or_text(m.text))
        elif m.role == "assistant" and (m.text or m.tool_calls):
            item = ("assistant", m.text, [(c.name, json.loads(c.arguments)) for c in m.tool_calls])
        elif m.role == "user":
            item = ("user", m.text)
        else:
            continue
        if out and item[0] == out[-1][0] == "user":  # Gemini merges adjacent user turns
            item = ("user", out.pop()[1] + item[1])
        out.append(item)
    return request.system_text, out


@given(requests())
def test_requests_round_trip(request: ChatRequest) -> None:
    assert view(request_from_gemini(request_to_gemini(request))) == view(request)


@st.composite
def responses(draw: st.DrawFn) -> ChatResponse:
    made, text = draw(calls("call_")), draw(st.text(max_size=40))
    finish: FinishReason = draw(st.sampled_from(["stop", "length", "content_filter", "error"]))
    completion = draw(COUNT)
    usage = draw(
        st.none()
        | st.builds(
            Usage,
            COUNT,
            st.just(completion),
            st.none() | COUNT,
            st.none() | st.integers(0, completion),
        )
    )
    return ChatResponse(
        id=draw(NAME),
        model=draw(NAME),
        message=Message("assistant", (TextPart(text),) if text else (), made),
        finish_reason="tool_calls" if made and finish == "stop" else finish,
        usage=usage,
    )


def _answer(r: ChatResponse) -> tuple[Any, ...]:
    return (
        r.message.text,
        [(c.id, c.name, json.loads(c.arguments)) for c in r.message.tool_calls],
        r.finish_reason,
        r.usage,
    )


@given(responses())
def test_responses_round_trip(response: ChatResponse) -> None:
    back = response_from_gemini(response_to_gemini(response), id="x", model="y")
    assert (back.id, back.model, *_answer(back)) == (
        response.id,
        response.model,
        *_answer(response),
    )


@given(responses(), st.integers(1, 5))
def test_streams_round_trip(response: ChatResponse, pieces: int) -> None:
    whole = response_to_gemini(response)
    candidate, text = whole["candidates"][0], response.message.text
    size = max(1, -(-len(text) // pieces))
    events = [
        {"candidates": [{"content": {"parts": [{"text": text[i : i + size]}]}}]}
        for i in range(0, len(text), size)
    ]
    calls_only = [p for p in candidate["content"]["parts"] if "functionCall" in p]
    events.append(
        {
            "candidates": [
                {"content": {"parts": calls_only}, "finishReason": candidate["finishReason"]}
            ],
            **({"usageMetadata": whole["usageMetadata"]} if response.usage else {}),
        }
    )
    decoder = StreamDecoder(id=response.id, model=response.model)
    deltas = [delta for event in events for _, delta in decoder.feed(event)]
    assert deltas[0].role and sum(d.role for d in deltas) == 1
    assert "".join(d.text for d in deltas) == response.message.text
    assert [
        (d.tool_id, d.tool_name, json.loads(d.arguments))
        for d in deltas
        if d.tool_index is not None
    ] == _answer(response)[1]
    assert [d.finish_reason for d in deltas if d.finish_reason] == [response.finish_reason]
    assert [d.usage for d in deltas if d.usage] == [u for u in [response.usage] if u]


SCHEMA_ANY = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["object", "string", "null"])
            | st.lists(st.sampled_from(["integer", "null"]))
        },
    ),
    lambda inner: st.dictionaries(
        st.sampled_from(
            [
                "properties",
                "items",
                "anyOf",
                "additionalProperties",
                "$schema",
                "oneOf",
                "required",
                "enum",
                "const",
                "default",
                "description",
            ]
        ),
        inner
        | st.lists(inner, max_size=2)
        | st.dictionaries(NAME, inner, max_size=2)
        | st.lists(NAME | st.integers(), max_size=2)
        | st.text(max_size=4),
        max_size=4,
    ),
    max_leaves=12,
)


def _keys_allowed(schema: dict[str, Any]) -> bool:
    nested = [
        *schema.get("anyOf", []),
        *schema.get("properties", {}).values(),
        *([schema["items"]] if "items" in schema else []),
    ]
    return set(schema) <= SCHEMA_KEYS and all(_keys_allowed(s) for s in nested)


@given(SCHEMA_ANY)
def test_schemas_keep_only_what_gemini_accepts(schema: dict[str, Any]) -> None:
    cleaned = gemini_schema(schema)
    assert _keys_allowed(cleaned)
    assert cleaned.get("type", "X").isupper()
