"""Capability-aware routing, per-target params and clamps, and the model equivalence table,
through a real gateway, the official openai SDK and simulated providers.

Every skipped target must have seen no request at all, and the journal must say why it
was skipped (``skipped_<reason>`` in the request's attempts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest

from standby.journal.store import RequestRow
from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway, running_gateway
from tests.e2e.faults_support import WEATHER_TOOL

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
IMAGE_MESSAGES: Any = [
    {"role": "user", "content": [{"type": "text", "text": "what is this?"}, IMAGE]}
]
HI: Any = [{"role": "user", "content": "hi"}]


def plan(
    primary: SimProvider,
    backup: SimProvider,
    *,
    caps: dict[str, Any] | None = None,
    targets: list[Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``primary`` (with ``caps``) → ``backup`` for ``gpt-4o-mini``."""
    return {
        "providers": {
            "primary": {"base_url": primary.base_url, "capabilities": caps or {}},
            "backup": {"base_url": backup.base_url},
        },
        "timeouts": {"connect": "1s", "first_token": "2s", "idle": "2s", "total": "10s"},
        "retry": {"backoff": "10ms", "max_backoff": "50ms"},
        "routes": {
            "gpt-4o-mini": {"targets": targets or ["primary/gpt-4o-mini", "backup/gpt-4o-mini"]}
        },
        **extra,
    }


@asynccontextmanager
async def client_for(
    config: dict[str, Any],
) -> AsyncIterator[tuple[RunningGateway, openai.AsyncOpenAI]]:
    async with running_gateway(config) as gw:
        client = openai.AsyncOpenAI(
            base_url=gw.base_url, api_key="unused", max_retries=0, timeout=10
        )
        try:
            yield gw, client
        finally:
            await client.close()


async def journaled(gw: RunningGateway) -> list[RequestRow]:
    """The journal's requests, oldest first."""
    service = gw.app.journal_service
    assert service is not None
    await service.flush()
    return list(reversed(await service.store.list_requests(limit=20)))


async def ask(client: openai.AsyncOpenAI, stream: bool, **options: Any) -> str:
    """One chat completion for ``gpt-4o-mini``, read whole; its text."""
    if not stream:
        reply = await client.chat.completions.create(model="gpt-4o-mini", messages=HI, **options)
        return reply.choices[0].message.content or ""
    chunks = await client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True, **options
    )
    return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


def outcomes(row: RequestRow) -> list[tuple[str, str]]:
    return [(target, outcome) for target, outcome, _ in row.attempts]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_image_request_skips_a_text_only_target(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    async with client_for(plan(primary, backup, caps={"images": False})) as (gw, client):
        if stream:
            chunks = await client.chat.completions.create(
                model="gpt-4o-mini", messages=IMAGE_MESSAGES, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=IMAGE_MESSAGES
            )
            assert raw.headers["x-standby-provider"] == "backup"
            text = raw.parse().choices[0].message.content or ""
        assert text == backup.expected_text()
        assert primary.requests == []
        assert backup.requests[-1].body["messages"][0]["content"][1] == IMAGE
        # text still goes to the primary: only the image request skipped it
        reply = await client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert reply.choices[0].message.content == primary.expected_text()
        assert len(primary.requests) == 1
        image_row, text_row = await journaled(gw)
    assert outcomes(image_row) == [
        ("primary/gpt-4o-mini", "skipped_no_images"),
        ("backup/gpt-4o-mini", "ok"),
    ]
    assert image_row.attempts[0][2] == 0.0 and image_row.provider == "backup"
    assert outcomes(text_row) == [("primary/gpt-4o-mini", "ok")]


async def test_an_over_long_prompt_goes_to_the_larger_context(
    primary: SimProvider, backup: SimProvider
) -> None:
    config = plan(primary, backup, caps={"max_context": 1000})
    async with client_for(config) as (gw, client):
        long: Any = [{"role": "user", "content": "word " * 2000}]  # ~2500 tokens
        reply = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=long
        )
        assert reply.headers["x-standby-provider"] == "backup"
        short = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HI, max_tokens=100
        )
        assert short.headers["x-standby-provider"] == "primary"
        # room for the requested output counts too
        roomy = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HI, max_tokens=4000
        )
        assert roomy.headers["x-standby-provider"] == "backup"
        long_row, _, roomy_row = await journaled(gw)
    assert len(primary.requests) == 1
    assert outcomes(long_row)[0] == ("primary/gpt-4o-mini", "skipped_context_too_small")
    assert outcomes(roomy_row)[0] == ("primary/gpt-4o-mini", "skipped_context_too_small")


async def test_a_request_with_tools_skips_a_target_without_tools(
    primary: SimProvider, backup: SimProvider
) -> None:
    # the target's own override: the provider supports tools, this model does not
    targets = [
        {"target": "primary/gpt-4o-mini", "capabilities": {"tools": False}},
        "backup/gpt-4o-mini",
    ]
    async with client_for(plan(primary, backup, targets=targets)) as (gw, client):
        reply = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HI, tools=[WEATHER_TOOL]
        )
        assert reply.headers["x-standby-provider"] == "backup"
        assert backup.requests[-1].body["tools"] == [WEATHER_TOOL]
        [row] = await journaled(gw)
    assert primary.requests == []
    assert outcomes(row) == [
        ("primary/gpt-4o-mini", "skipped_no_tools"),
        ("backup/gpt-4o-mini", "ok"),
    ]


async def test_a_request_no_target_can_serve_is_a_400(
    primary: SimProvider, backup: SimProvider
) -> None:
    config = plan(primary, backup, caps={"images": False})
    config["providers"]["backup"]["capabilities"] = {"images": False}
    async with client_for(config) as (gw, client):
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="gpt-4o-mini", messages=IMAGE_MESSAGES)
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=IMAGE_MESSAGES, stream=True
            )
        rows = await journaled(gw)
    assert info.value.code == "unsupported_capability"
    assert info.value.param == "messages"
    assert "does not accept images" in info.value.message
    assert primary.requests == [] and backup.requests == []
    for row in rows:
        assert (row.state, row.status) == ("failed", 400)
        assert outcomes(row) == [
            ("primary/gpt-4o-mini", "skipped_no_images"),
            ("backup/gpt-4o-mini", "skipped_no_images"),
        ]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_params_and_clamps_reach_the_target(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    targets = [
        {
            "target": "primary/gpt-4o-mini",
            "params": {"max_tokens": 64, "seed": None},
            "clamp": {"temperature": [0, 1]},
        },
        {"target": "backup/gpt-4o-mini", "clamp": {"max_tokens": [1, 256]}},
    ]
    async with client_for(plan(primary, backup, targets=targets)) as (_, client):
        primary.set_fault(Fault("error", status=503, times=1))
        await ask(client, stream, temperature=1.8, max_tokens=1000, seed=3)
        await ask(client, stream, temperature=0.2, max_tokens=1000, seed=3)
    to_backup, to_primary = backup.requests[-1].body, primary.requests[-1].body
    # the backup has its own shaping: max_tokens clamped, the rest as the caller sent it
    assert (to_backup["max_tokens"], to_backup["temperature"], to_backup["seed"]) == (256, 1.8, 3)
    assert type(to_backup["max_tokens"]) is int
    assert (to_primary["max_tokens"], to_primary["temperature"]) == (64, 0.2)
    assert "seed" not in to_primary


async def test_the_equivalence_table_names_each_vendors_model(
    primary: SimProvider, backup: SimProvider
) -> None:
    config = plan(primary, backup, models={"gpt-4o": {"backup": "claude-sonnet-4-5"}})
    config["routes"] = {"gpt-4o*": {"targets": ["primary/{model}", "backup/{equivalent}"]}}
    async with client_for(config) as (_, client):
        primary.set_fault(Fault("error", status=503))
        raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
        reply = raw.parse()
        # the answer names the model that really answered, not the one asked for
        assert reply.model == "claude-sonnet-4-5"
        assert raw.headers["x-standby-model"] == "claude-sonnet-4-5"
        assert backup.requests[-1].body["model"] == "claude-sonnet-4-5"
        # no equivalent for this name: the backup is left out, only the primary is asked
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        assert len(backup.requests) == 1
        assert primary.requests[-1].body["model"] == "gpt-4o-mini"
