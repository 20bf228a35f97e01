"""What a request needs, what a target lacks, and screening an attempt plan."""

from __future__ import annotations

import random
from typing import Any

import pytest

from standby.errors import InvalidRequest
from standby.health.gate import OpenGate
from standby.plan.model import Retry, Timeouts
from standby.routing.attempts import AttemptRecord, AttemptSchedule
from standby.routing.capabilities import (
    EVERYTHING,
    IMAGE_TOKENS,
    MESSAGE_TOKENS,
    Caps,
    Depth,
    Needs,
    depth_for,
    needs,
    unfit,
)
from standby.routing.policy import Target

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


# (case, body, what it needs)
NEEDS = [
    ("plain text", {"messages": [user("hi")]}, Needs()),
    (
        "image part",
        {"messages": [user([{"type": "text", "text": "what?"}, IMAGE])]},
        Needs(images=True),
    ),
    ("tools offered", {"messages": [user("hi")], "tools": [TOOL]}, Needs(tools=True)),
    (
        "legacy functions",
        {"messages": [user("hi")], "functions": [TOOL["function"]]},
        Needs(tools=True),
    ),
    (
        "tool history only",
        {
            "messages": [
                user("weather?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ]
        },
        Needs(tools=True),
    ),
    (
        "json schema",
        {
            "messages": [user("hi")],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
        },
        Needs(json_schema=True),
    ),
    (
        "json object is not a schema",
        {"messages": [user("hi")], "response_format": {"type": "json_object"}},
        Needs(),
    ),
    (
        "odd shapes are ignored",
        {"messages": ["x", user(3), user([1, {"type": "text"}])], "response_format": "json_schema"},
        Needs(),
    ),
    ("no messages", {"input": "embed me"}, Needs()),
    (
        "types and roles that are not strings",  # found by the fuzz test: once a 500
        {"messages": [user([{"type": ["image_url"]}]), {"role": ["tool"], "content": "x"}]},
        Needs(),
    ),
]


@pytest.mark.parametrize(("body", "need"), [c[1:] for c in NEEDS], ids=[c[0] for c in NEEDS])
def test_needs(body: dict[str, Any], need: Needs) -> None:
    got = needs(body)
    assert (got.tools, got.images, got.json_schema) == (need.tools, need.images, need.json_schema)


# (case, body, estimated tokens)
TOKENS = [
    ("ascii: characters / 4, rounded up", {"messages": [user("x" * 401)]}, MESSAGE_TOKENS + 101),
    (
        "text parts add up",
        {"messages": [user([{"type": "text", "text": "x" * 400}] * 2)]},
        MESSAGE_TOKENS + 200,
    ),
    (
        "each image has an allowance",
        {"messages": [user([IMAGE, IMAGE])]},
        MESSAGE_TOKENS + 2 * IMAGE_TOKENS,
    ),
    ("non-ascii counts its bytes", {"messages": [user("日本" * 200)]}, MESSAGE_TOKENS + 300),
    (
        "requested output needs room",
        {"messages": [user("")], "max_tokens": 1000},
        MESSAGE_TOKENS + 1000,
    ),
    (
        "max_completion_tokens too",
        {"messages": [user("")], "max_completion_tokens": 50, "max_tokens": 9},
        MESSAGE_TOKENS + 50,
    ),
    (
        "tool arguments are prompt",
        {
            "messages": [
                {"role": "assistant", "tool_calls": [{"function": {"arguments": "y" * 40}}]}
            ]
        },
        MESSAGE_TOKENS + 10,
    ),
]


@pytest.mark.parametrize(("body", "tokens"), [c[1:] for c in TOKENS], ids=[c[0] for c in TOKENS])
def test_token_estimate(body: dict[str, Any], tokens: int) -> None:
    assert needs(body).tokens == tokens


def test_shallow_depth_reads_no_messages() -> None:
    body = {
        "messages": [user([IMAGE])],
        "tools": [TOOL],
        "response_format": {"type": "json_schema"},
    }
    assert needs(body, Depth.BODY) == Needs(tools=True, json_schema=True, tokens=0)


# (case, caps, needs, reason)
UNFIT = [
    ("everything serves anything", EVERYTHING, Needs(True, True, True, 10**9), None),
    ("text-only model, image", Caps(images=False), Needs(images=True), "no_images"),
    ("text-only model, text", Caps(images=False), Needs(tools=True), None),
    ("no tools", Caps(tools=False), Needs(tools=True), "no_tools"),
    ("no json schema", Caps(json_schema=False), Needs(json_schema=True), "no_json_schema"),
    ("prompt too long", Caps(max_context=8000), Needs(tokens=8001), "context_too_small"),
    ("prompt fits exactly", Caps(max_context=8000), Needs(tokens=8000), None),
    ("images first", Caps(images=False, max_context=1), Needs(images=True, tokens=9), "no_images"),
    ("no embeddings endpoint", Caps(embeddings=False), Needs(embeddings=True), "no_embeddings"),
    ("a chat at a model without embeddings", Caps(embeddings=False), Needs(), None),
]


@pytest.mark.parametrize(
    ("caps", "need", "reason"), [c[1:] for c in UNFIT], ids=[c[0] for c in UNFIT]
)
def test_unfit(caps: Caps, need: Needs, reason: str | None) -> None:
    assert unfit(caps, need) == reason


@pytest.mark.parametrize(
    ("caps", "depth"),
    [
        ([EVERYTHING, EVERYTHING], Depth.NONE),
        ([EVERYTHING, Caps(json_schema=False)], Depth.BODY),
        ([Caps(json_schema=False), Caps(images=False)], Depth.MESSAGES),
        ([Caps(tools=False)], Depth.MESSAGES),
        ([Caps(max_context=128_000)], Depth.MESSAGES),
        ([EVERYTHING, Caps(embeddings=False)], Depth.BODY),
        ([], Depth.NONE),
    ],
)
def test_depth_for(caps: list[Caps], depth: Depth) -> None:
    assert depth_for(caps) is depth


def attempt_schedule(*targets: Target) -> AttemptSchedule:
    return AttemptSchedule(
        candidates=list(targets),
        gate=OpenGate(),
        timeouts=Timeouts(),
        retry=Retry(),
        clock=lambda: 0.0,
        rng=random.Random(1),
    )


TEXT = Target("text", "small", caps=Caps(images=False, max_context=1000))
VISION = Target("vision", "big")


def test_screen_skips_and_records_why() -> None:
    plan = attempt_schedule(TEXT, VISION)
    plan.screen(Needs(images=True), "chat")
    assert plan.candidates == [VISION]
    assert plan.history == [AttemptRecord("text/small", "skipped_no_images", 0.0)]
    assert plan.attempts == 0  # a skip is not a try
    assert plan.first().target == VISION


def test_screen_keeps_everyone_who_fits() -> None:
    plan = attempt_schedule(TEXT, VISION)
    plan.screen(Needs(tokens=10), "chat")
    assert plan.candidates == [TEXT, VISION] and plan.history == []


@pytest.mark.parametrize(
    ("need", "param", "code", "words"),
    [
        (Needs(images=True), "messages", "unsupported_capability", ["text/small does not accept"]),
        (
            Needs(tokens=5000),
            "messages",
            "context_length_exceeded",
            ["context of 1000 tokens", "about 5000"],
        ),
    ],
)
def test_nothing_fits_is_a_400_naming_the_capability(
    need: Needs, param: str, code: str, words: list[str]
) -> None:
    plan = attempt_schedule(TEXT)
    with pytest.raises(InvalidRequest) as info:
        plan.screen(need, "chat")
    assert (info.value.status, info.value.param, info.value.code) == (400, param, code)
    assert "No target of route `chat` can serve this request" in info.value.message
    for word in words:
        assert word in info.value.message
    assert len(plan.history) == 1 and plan.history[0].outcome.startswith("skipped_")
