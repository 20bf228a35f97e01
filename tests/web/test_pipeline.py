"""The request pipeline, driven through raw ASGI with a real router over scripted providers:
what a wire gets by defining ``parse`` alone, what each hook changes, and the shared
splitter of the stream engine's output."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from standby.canonical.chat import Delta
from standby.errors import (
    ConnectFailed,
    Exhausted,
    InvalidRequest,
    JournalUnavailable,
    StandbyError,
    Unauthorized,
)
from standby.plan.model import Plan
from standby.routing.policy import ResolvedRoute
from standby.web.anthropic_api import AnthropicWire
from standby.web.app import StandbyApp
from standby.web.asgi import Message, Scope
from standby.web.clients import hash_key
from standby.web.pipeline import Handler, Pipeline, Rendered, Request, Wire, translator
from standby.web.responses_api import ResponsesWire
from tests.routing.doubles import Replies, Upstream, chunk, reply

MODEL = "m"
KEY = "sk-alice-0123456789"
BODY = orjson.dumps({"model": MODEL, "text": "hi"})


class Recorder:
    """A journal sink that keeps every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.calls if kind != "delta"]

    def of(self, kind: str) -> dict[str, Any]:
        return next(fields for k, _, fields in self.calls if k == kind)

    def accepted(self, rid: str, **fields: Any) -> None:
        self.calls.append(("accepted", rid, fields))

    def delta(self, rid: str, text: str) -> None:
        self.calls.append(("delta", rid, {"text": text}))

    def completed(self, rid: str, **fields: Any) -> None:
        self.calls.append(("completed", rid, fields))

    def failed(self, rid: str, **fields: Any) -> None:
        self.calls.append(("failed", rid, fields))

    def client_gone(self, rid: str, **fields: Any) -> None:
        self.calls.append(("client_gone", rid, fields))

    def deferred(self, rid: str, **fields: Any) -> None:
        self.calls.append(("deferred", rid, fields))


class Echo(Wire[Request]):
    """A made-up wire that defines ``parse`` and nothing else: OpenAI's shape throughout."""

    name = "echo"

    def parse(self, raw: bytes) -> Request:
        body = orjson.loads(raw)
        if not isinstance(body.get("text"), str):
            raise InvalidRequest("text: required", param="text")
        return Request(
            raw,
            {"model": body["model"], "messages": [{"role": "user", "content": body["text"]}]},
            body["model"],
            stream=body.get("stream") is True,
        )


@dataclass
class Answered:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    more: list[bytes] = field(default_factory=list)  # body parts, for a stream


@dataclass
class Gateway:
    pipeline: Pipeline
    journal: Recorder
    app: StandbyApp

    async def call(
        self, handler: Handler, body: bytes = BODY, *, key: str | None = KEY, path: str = "/x"
    ) -> Answered:
        headers = [(b"content-type", b"application/json")]
        if key is not None:
            headers.append((b"authorization", f"Bearer {key}".encode()))
        scope: Scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
        got = Answered()
        read = [False]
        never = asyncio.Event()  # the client stays: the disconnect watcher waits for ever

        async def receive() -> Message:
            if not read[0]:
                read[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            await never.wait()
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                got.status = message["status"]
                got.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            else:
                got.more.append(message.get("body", b""))
                got.body += message.get("body", b"")

        async with asyncio.timeout(5):
            await handler(scope, receive, send)
        return got


def plan(provider: str = "a") -> Plan:
    return Plan.model_validate(
        {
            "providers": {
                provider: {
                    "kind": "openai-compatible",
                    "base_url": "http://127.0.0.1:9/v1",
                    "api_key": "sk-x",
                }
            },
            "server": {"client_keys": {"alice": hash_key(KEY)}},
            "retry": {"max_attempts": 1},
            "routes": {MODEL: {"targets": [f"{provider}/{MODEL}"]}},
        }
    )


@pytest.fixture
async def gateway_for() -> AsyncIterator[Any]:
    apps: list[StandbyApp] = []

    def build(provider: Any) -> Gateway:
        app = StandbyApp(plan(provider.name), providers={provider.name: provider}, data_dir=None)
        apps.append(app)
        journal = Recorder()
        gateway = app.gateway
        pipeline = Pipeline(gateway.router, gateway.keys, journal, max_body=1 << 20)
        return Gateway(pipeline, journal, app)

    yield build
    for app in apps:
        await app.aclose()


async def test_a_wire_that_only_parses_passes_openai_through(gateway_for: Any) -> None:
    answer = reply(MODEL)
    provider = Replies("a", answer)
    gw = gateway_for(provider)
    got = await gw.call(gw.pipeline.handler(Echo()))
    assert (got.status, got.body) == (200, answer.raw), "the provider's bytes, as sent"
    assert provider.calls[0].body["messages"] == [{"role": "user", "content": "hi"}]
    assert got.headers["x-standby-provider"] == "a" and got.headers["x-standby-route"] == MODEL
    assert gw.journal.kinds() == ["accepted", "completed"]
    rid = gw.journal.calls[0][1]
    assert got.headers["x-request-id"] == rid
    accepted = gw.journal.of("accepted")
    assert (accepted["endpoint"], accepted["model"], accepted["client"]) == ("echo", MODEL, "alice")
    assert accepted["raw_body"] == BODY and accepted["store"] is False
    completed = gw.journal.of("completed")
    assert completed["completion_id"] == "chatcmpl-1" and completed["response"] == answer.raw


async def test_an_answer_without_an_id_is_journaled_under_the_request_id(gateway_for: Any) -> None:
    answer = reply(MODEL)
    answer.data.pop("id")
    gw = gateway_for(Replies("a", answer))
    await gw.call(gw.pipeline.handler(Echo()))
    assert gw.journal.of("completed")["completion_id"] == gw.journal.calls[0][1]


class Shouting(Echo):
    """Errors in a shape of its own, to see which renderer answers what."""

    def error(self, error: StandbyError) -> Rendered:
        status = 599 if isinstance(error, Exhausted) else getattr(error, "status", 500)
        return status, f"NO: {error}".encode(), [(b"x-shout", b"1")]


async def test_the_client_key_is_checked_first_and_refused_in_the_wire_format(
    gateway_for: Any,
) -> None:
    provider = Replies("a")
    gw = gateway_for(provider)
    got = await gw.call(gw.pipeline.handler(Shouting()), key="sk-wrong")
    assert got.status == 401 and got.body.startswith(b"NO: Incorrect API key")
    assert got.headers["x-shout"] == "1" and "x-request-id" not in got.headers
    assert gw.journal.calls == [] and provider.calls == []


async def test_a_bad_body_is_refused_before_routing(gateway_for: Any) -> None:
    provider = Replies("a")
    gw = gateway_for(provider)
    got = await gw.call(gw.pipeline.handler(Shouting()), orjson.dumps({"model": MODEL}))
    assert (got.status, got.body) == (400, b"NO: text: required")
    assert gw.journal.calls == [] and provider.calls == []


async def test_a_failure_is_journaled_as_the_client_saw_it(gateway_for: Any) -> None:
    gw = gateway_for(Replies("a", ConnectFailed("refused")))
    got = await gw.call(gw.pipeline.handler(Shouting()))
    assert got.status == 599 and got.headers["x-shout"] == "1"
    assert gw.journal.kinds() == ["accepted", "failed"]
    failed = gw.journal.of("failed")
    assert (failed["status"], failed["response"]) == (599, got.body)
    assert [outcome for _, outcome, _ in failed["attempts"]] == ["connect_failed"]
    assert got.headers["x-request-id"] == gw.journal.calls[0][1]


class Patient(Echo):
    """Accepts for later what nothing can serve now, unless the text says no."""

    async def accept_for_later(
        self, rid: str, scope: Scope, request: Request, route: ResolvedRoute
    ) -> Rendered | None:
        if request.body["messages"][0]["content"] == "no":
            raise InvalidRequest("callback host not allowed")
        return 202, orjson.dumps({"id": rid}), [(b"x-route", route.name.encode())]


async def test_accept_for_later_answers_instead_of_the_error(gateway_for: Any) -> None:
    gw = gateway_for(Replies("a", ConnectFailed("refused"), ConnectFailed("refused")))
    later = await gw.call(gw.pipeline.handler(Patient()))
    assert later.status == 202 and later.headers["x-route"] == MODEL
    assert orjson.loads(later.body) == {"id": gw.journal.calls[0][1]}
    assert gw.journal.kinds() == ["accepted"], "the deferral journals itself, not a failure"
    refused = await gw.call(
        gw.pipeline.handler(Patient()), orjson.dumps({"model": MODEL, "text": "no"})
    )
    assert refused.status == 400 and b"callback host" in refused.body
    assert gw.journal.kinds() == ["accepted", "accepted", "failed"]


class Upper:
    """Stream events of a made-up format: each text delta upper-cased, one per line."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def prelude(self) -> bytes:
        return b"BEGIN\n"

    def feed(self, delta: Delta) -> bytes:
        return delta.text.upper().encode() + b"\n" if delta.text else b""

    def finish(self) -> bytes:
        return b"END\n"

    def interrupted(self, error: dict[str, Any]) -> bytes:
        self.errors.append(error)
        return b"BROKEN\n"


class Loud(Echo):
    def events(self, request: Request, run: Any, target: Any) -> Upper:
        return Upper()


async def test_a_stream_is_mapped_by_the_wire_events(gateway_for: Any) -> None:
    upstream = Upstream("a")
    upstream.put(chunk("hello "), chunk("world"), chunk(finish="stop"), None)
    gw = gateway_for(upstream)
    body = orjson.dumps({"model": MODEL, "text": "hi", "stream": True})
    got = await gw.call(gw.pipeline.handler(Loud()), body)
    assert got.status == 200 and got.headers["content-type"].startswith("text/event-stream")
    assert got.body == b"BEGIN\nHELLO \nWORLD\nEND\n"
    assert got.more[0] == b"BEGIN\n", "the prelude goes out on its own, first"
    assert gw.journal.kinds() == ["accepted", "completed"]
    assert gw.journal.of("accepted")["stream"] is True


async def test_without_events_the_stream_is_openai_as_sent(gateway_for: Any) -> None:
    upstream = Upstream("a")
    upstream.put(chunk("hello"), chunk(finish="stop"), None)
    gw = gateway_for(upstream)
    body = orjson.dumps({"model": MODEL, "text": "hi", "stream": True})
    got = await gw.call(gw.pipeline.handler(Echo()), body)
    assert got.body == (
        b"data: " + chunk("hello").raw + b"\n\ndata: " + chunk(finish="stop").raw + b"\n\n"
        b"data: [DONE]\n\n"
    )


def test_the_splitter_takes_several_events_at_once() -> None:
    events = Upper()
    translate = translator(events)
    data = b"".join(
        b"data: " + item.raw + b"\n\n" for item in (chunk("a"), chunk("b"), chunk(finish="stop"))
    )
    assert translate(data + b"data: [DONE]\n\n") == b"A\nB\nEND\n"
    error = {"message": "gone", "code": "upstream_unavailable"}
    assert translate(b"data: " + orjson.dumps({"error": error}) + b"\n\n") == b"BROKEN\n"
    assert events.errors == [error]
    assert translate(b"\n\n") == b""


async def test_anthropic_errors_in_its_own_shape(gateway_for: Any) -> None:
    gw = gateway_for(Replies("a"))
    wire = AnthropicWire(gw.pipeline)
    status, body, headers = wire.error(Exhausted("all down", retry_after=2.4))
    assert status == 529 and headers == [(b"retry-after", b"2")]
    assert orjson.loads(body)["error"]["type"] == "overloaded_error"
    status, body, _ = wire.error(Unauthorized("Incorrect API key provided."))
    assert orjson.loads(body) == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Incorrect API key provided."},
    }
    got = await gw.call(wire.messages, key=None, path="/v1/messages")
    assert got.status == 401 and orjson.loads(got.body)["type"] == "error"


async def test_responses_say_when_the_journal_cannot_be_read(gateway_for: Any) -> None:
    gw = gateway_for(Replies("a"))
    status, body, _ = ResponsesWire(gw.pipeline).error(JournalUnavailable("behind"))
    assert status == 503
    assert orjson.loads(body)["error"] == {
        "message": "previous_response_id could not be read: behind",
        "type": "server_error",
        "param": "previous_response_id",
        "code": "journal_unavailable",
    }
