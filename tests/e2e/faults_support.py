"""Helpers for the fault-catalogue tests: a gateway with an SDK client, one exchange read
whole (streamed or not), and what each simulated provider saw.

Every wait here is bounded: an exchange by ``EXCHANGE_TIMEOUT`` (``asyncio.timeout``, on
top of the SDK's own timeout), so a gateway bug shows up as a failure, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
import orjson
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionFunctionToolParam

from standby.sim import SimProvider
from standby.testing import RunningGateway, running_gateway

EXCHANGE_TIMEOUT = 15.0
Headers = Mapping[str, str]
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
CLIENT_KEY = "sk-client-key-not-for-upstream"
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SECRETS = ("sk-primary-secret", "sk-backup-secret")


@dataclass
class Exchange:
    """What the client received for one chat completion, streamed or not."""

    stream: bool
    headers: Mapping[str, str]
    text: str = ""
    ids: list[str] = field(default_factory=list)  # one per chunk (one for a plain reply)
    models: set[str] = field(default_factory=set)
    roles: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: CompletionUsage | None = None
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def provider(self) -> str:
        return self.headers.get("x-standby-provider", "")

    @property
    def attempts(self) -> int:
        return int(self.headers.get("x-standby-attempts", "0"))

    @property
    def model(self) -> str:
        """The one model the body names (fails the test if chunks disagree)."""
        assert len(self.models) == 1, self.models
        return next(iter(self.models))


class Gateway:
    """A running gateway and an official SDK client pointed at it."""

    def __init__(self, gw: RunningGateway, client: openai.AsyncOpenAI) -> None:
        self.gw = gw
        self.client = client

    async def ask(self, *, stream: bool, model: str = "gpt-4o-mini", **kwargs: Any) -> Exchange:
        """One chat completion read to its end; the SDK's errors propagate."""
        kwargs.setdefault("messages", MESSAGES)
        started = time.monotonic()
        async with asyncio.timeout(EXCHANGE_TIMEOUT):
            if stream:
                got = await self._ask_stream(model, kwargs)
            else:
                raw = await self.client.chat.completions.with_raw_response.create(
                    model=model, **kwargs
                )
                reply = raw.parse()
                got = Exchange(
                    False, raw.headers, ids=[reply.id], models={reply.model}, usage=reply.usage
                )
                choice = reply.choices[0]
                got.text = choice.message.content or ""
                got.roles.append(choice.message.role)
                got.finish_reason = choice.finish_reason
                for index, call in enumerate(choice.message.tool_calls or []):
                    assert call.type == "function"
                    got.tool_calls[index] = {
                        "id": call.id,
                        "name": call.function.name,
                        "arguments": call.function.arguments,
                    }
        got.seconds = time.monotonic() - started
        return got

    async def _ask_stream(self, model: str, kwargs: dict[str, Any]) -> Exchange:
        raw = await self.client.chat.completions.with_raw_response.create(
            model=model, stream=True, **kwargs
        )
        got = Exchange(True, raw.headers)
        chunks = raw.parse()
        try:
            async for chunk in chunks:
                got.ids.append(chunk.id)
                got.models.add(chunk.model)
                if chunk.usage is not None:
                    got.usage = chunk.usage
                for choice in chunk.choices:
                    assert choice.index == 0, "only one choice was asked for"
                    delta = choice.delta
                    if delta.role:
                        got.roles.append(delta.role)
                    got.text += delta.content or ""
                    for call in delta.tool_calls or []:
                        slot = got.tool_calls.setdefault(
                            call.index, {"id": None, "name": "", "arguments": ""}
                        )
                        if call.id:
                            assert slot["id"] in (None, call.id), "a tool call changed its id"
                            slot["id"] = call.id
                        if call.function is not None:
                            slot["name"] += call.function.name or ""
                            slot["arguments"] += call.function.arguments or ""
                    if choice.finish_reason:
                        assert got.finish_reason is None, "two finish reasons"
                        got.finish_reason = choice.finish_reason
        finally:
            await chunks.close()
        return got

    async def health(self) -> dict[str, Any]:
        """``GET /standby/health`` as JSON."""
        status, body, _ = await self.http("GET", "/standby/health")
        assert status == 200, body
        return dict(orjson.loads(body))

    async def target(self, key: str) -> dict[str, Any]:
        """One target's health (``provider/model``)."""
        targets: dict[str, Any] = (await self.health())["targets"]
        return dict(targets[key])

    async def http(
        self,
        method: str,
        path: str,
        data: bytes | AsyncIterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes, Headers]:
        """A raw HTTP request to the gateway (``path`` from the root), outside the SDK."""
        async with (
            asyncio.timeout(EXCHANGE_TIMEOUT),
            aiohttp.ClientSession() as session,
            session.request(
                method, self.gw.root_url + path, data=data, headers=dict(headers or {})
            ) as resp,
        ):
            return resp.status, await resp.read(), dict(resp.headers)


@contextlib.asynccontextmanager
async def serve(plan: dict[str, Any]) -> AsyncIterator[Gateway]:
    """The gateway for ``plan`` on loopback, with a client that never retries by itself."""
    async with running_gateway(plan) as gw:
        client = openai.AsyncOpenAI(
            base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=EXCHANGE_TIMEOUT
        )
        try:
            yield Gateway(gw, client)
        finally:
            await client.close()


def seen(sim: SimProvider) -> list[str]:
    """The fault label of every request the provider saw, in order."""
    return [r.fault for r in sim.requests]


def gaps(sim: SimProvider) -> list[float]:
    """Seconds between consecutive requests the provider saw."""
    at = [r.at for r in sim.requests]
    return [b - a for a, b in itertools.pairwise(at)]


def last_message(sim: SimProvider, index: int = -1) -> dict[str, Any]:
    """The last message of the ``index``-th request the provider saw."""
    messages: list[dict[str, Any]] = sim.requests[index].body["messages"]
    return messages[-1]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def single_target_plan(sim: SimProvider, **overrides: Any) -> dict[str, Any]:
    """One provider, one route ``solo`` → ``primary/gpt-4o-mini``."""
    plan: dict[str, Any] = {
        "providers": {
            "primary": {
                "kind": "openai-compatible",
                "base_url": sim.base_url,
                "api_key": "sk-primary-secret",
            }
        },
        "timeouts": {"connect": "1s", "first_token": "1s", "idle": "1s", "total": "20s"},
        "retry": {"backoff": "10ms", "max_backoff": "50ms"},
        "routes": {"solo": {"targets": ["primary/gpt-4o-mini"]}},
        "probes": {"enabled": False},  # these tests count the sim's requests
    }
    plan.update(overrides)
    return plan
