"""Hypothesis strategies for the canonical conversation (``standby.canonical.chat``).

Shared by the vendor translators' property tests.  Conversations are valid ones, as a
vendor would accept them: optional system/developer instructions, then user turns, each
answered by the assistant with text and/or tool calls, every tool call followed by its
result.  Tool arguments are JSON objects (what every vendor's tool calls carry).
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import strategies as st

from standby.canonical.chat import (
    ChatRequest,
    ChatResponse,
    Delta,
    FinishReason,
    ImagePart,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)

texts = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30)
names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
call_ids = st.from_regex(r"call_[A-Za-z0-9]{6,12}", fullmatch=True)
finishes: st.SearchStrategy[FinishReason] = st.sampled_from(
    ["stop", "length", "tool_calls", "content_filter"]
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(names, json_values, max_size=4)
arguments = json_objects.map(lambda value: orjson.dumps(value).decode())

images = st.one_of(
    st.builds(
        ImagePart,
        url=st.from_regex(r"https://img\.example/[a-z]{1,8}\.png", fullmatch=True),
        detail=st.sampled_from([None, "low", "high", "auto"]),
    ),
    st.builds(
        ImagePart,
        data=st.from_regex(r"[A-Za-z0-9+/]{4,16}={0,2}", fullmatch=True),
        media_type=st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]),
        detail=st.sampled_from([None, "low", "high"]),
    ),
)
user_parts: st.SearchStrategy[tuple[Part, ...]] = st.lists(
    st.one_of(texts.map(TextPart), images), min_size=1, max_size=3
).map(tuple)


@st.composite
def assistant_turns(draw: st.DrawFn) -> list[Message]:
    """An assistant message (text, tool calls or both) and the results of its calls."""
    count = draw(st.integers(0, 2))
    ids = draw(st.lists(call_ids, min_size=count, max_size=count, unique=True))
    calls = tuple(ToolCall(i, draw(names), draw(arguments)) for i in ids)
    text = draw(texts) if not calls or draw(st.booleans()) else ""
    turn = [Message("assistant", (TextPart(text),) if text else (), calls)]
    turn += [Message("tool", (TextPart(draw(texts)),), tool_call_id=c.id) for c in calls]
    return turn


@st.composite
def conversations(draw: st.DrawFn) -> tuple[Message, ...]:
    """Instructions, then user turns each answered; it ends on a user message."""
    out: list[Message] = []
    for role in ("system", "developer"):
        if draw(st.booleans()):
            out.append(Message(role, (TextPart(draw(texts)),)))
    for _ in range(draw(st.integers(0, 2))):
        out.append(Message("user", draw(user_parts)))
        out.extend(draw(assistant_turns()))
    out.append(Message("user", draw(user_parts)))
    return tuple(out)


tools = st.builds(
    Tool,
    name=names,
    description=st.one_of(st.just(""), texts),
    parameters=st.dictionaries(names, st.just({"type": "string"}), min_size=1, max_size=3).map(
        lambda props: {"type": "object", "properties": props}
    ),
)


@st.composite
def requests(draw: st.DrawFn) -> ChatRequest:
    """A canonical chat request (no response format, no vendor extras)."""
    tool_list = draw(st.lists(tools, max_size=3, unique_by=lambda t: t.name))
    choices: list[str | None] = [None, "auto", "none", "required"]
    choices += [t.name for t in tool_list]
    stream = draw(st.booleans())
    return ChatRequest(
        model=draw(names),
        messages=draw(conversations()),
        tools=tuple(tool_list),
        tool_choice=draw(st.sampled_from(choices)) if tool_list else None,
        temperature=draw(st.none() | st.floats(0, 2)),
        top_p=draw(st.none() | st.floats(0, 1)),
        max_tokens=draw(st.none() | st.integers(1, 200_000)),
        stop=tuple(draw(st.lists(texts, max_size=3))),
        stream=stream,
        include_usage=stream and draw(st.booleans()),
        user=draw(st.none() | names),
    )


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    prompt = draw(st.integers(0, 10**6))
    cached = draw(st.none() | st.integers(0, prompt))
    return Usage(
        prompt, draw(st.integers(0, 10**6)), cached, draw(st.none() | st.integers(0, 10**5))
    )


@st.composite
def responses(draw: st.DrawFn) -> ChatResponse:
    """A canonical answer: text, tool calls or both, with usage."""
    turn = draw(assistant_turns())[0]
    return ChatResponse(
        id=f"resp_{draw(names)}",
        model=draw(names),
        message=turn,
        finish_reason=draw(finishes),
        usage=draw(usages()),
        created=draw(st.integers(0, 2**31)),
    )


def _fragments(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=4)))
    bounds = [0, *[c for c in cuts if c < len(text)], len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def delta_streams(draw: st.DrawFn) -> list[Delta]:
    """A streamed answer as an OpenAI-ordered delta sequence: role, text pieces, tool
    calls (the first fragment names the call), the finish, then usage."""
    out = [Delta(role=True)]
    out += [Delta(text=t) for t in draw(st.lists(texts, max_size=5))]
    ids = draw(st.lists(call_ids, max_size=2, unique=True))
    for index, call_id in enumerate(ids):
        pieces = _fragments(draw, draw(arguments))
        out.append(
            Delta(tool_index=index, tool_id=call_id, tool_name=draw(names), arguments=pieces[0])
        )
        out += [Delta(tool_index=index, arguments=p) for p in pieces[1:]]
    out.append(Delta(finish_reason="tool_calls" if ids else draw(finishes)))
    out.append(Delta(usage=draw(usages())))
    return out


def collect(deltas: list[Delta]) -> dict[str, Any]:
    """What a client makes of a delta sequence: text, calls, finish and usage."""
    calls: dict[int, dict[str, str]] = {}
    seen: dict[str, Any] = {"text": "", "finish": None, "usage": None, "calls": calls}
    for delta in deltas:
        seen["text"] += delta.text
        if delta.tool_index is not None:
            call = calls.setdefault(delta.tool_index, {"id": "", "name": "", "arguments": ""})
            call["id"] = delta.tool_id or call["id"]
            call["name"] = delta.tool_name or call["name"]
            call["arguments"] += delta.arguments
        seen["finish"] = delta.finish_reason or seen["finish"]
        seen["usage"] = delta.usage or seen["usage"]
    return seen
