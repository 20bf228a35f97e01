"""The access log: one line per HTTP request, its fields, its cost when off, its JSON shape."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson
import pytest

from standby.sim import SimProvider
from standby.testing import running_gateway
from standby.web.access_log import ACCESS_FIELDS, AccessLog, JsonFormatter
from standby.web.asgi import Message, Receive, Scope, Send
from standby.web.clients import CLIENT_SCOPE_KEY, hash_key


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def access() -> tuple[logging.Logger, Records]:
    logger = logging.getLogger("standby.access.test")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    records = Records()
    logger.handlers = [records]
    return logger, records


def http_scope(**extra: Any) -> Scope:
    return {"type": "http", "method": "POST", "path": "/v1/chat/completions", **extra}


async def nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def call(app: AccessLog, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, nothing, send)
    return sent


async def test_one_line_per_request_with_who_answered_and_the_latency_to_the_last_byte(
    access: tuple[logging.Logger, Records],
) -> None:
    logger, records = access
    clock = Clock()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope[CLIENT_SCOPE_KEY] = "alice"  # the key check runs inside the app
        clock.now += 0.2
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"x-request-id", b"req-7"),
                    (b"x-standby-provider", b"backup"),
                    (b"x-standby-model", b"gpt-4o-mini"),
                    (b"x-standby-attempts", b"2"),
                    (b"x-standby-route", b"chat"),
                ],
            }
        )
        for _ in range(3):
            clock.now += 0.1
            await send({"type": "http.response.body", "body": b"data", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        clock.now += 5.0  # work after the answer is not the caller's wait

    sent = await call(AccessLog(app, logger, clock), http_scope())

    assert len(sent) == 5
    [record] = records.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "req-7 alice POST /v1/chat/completions route=chat target=backup/gpt-4o-mini "
        "attempts=2 200 500.0ms"
    )
    fields = {name: getattr(record, name) for name in ACCESS_FIELDS}
    assert fields == {
        "request_id": "req-7",
        "client": "alice",
        "method": "POST",
        "path": "/v1/chat/completions",
        "route": "chat",
        "target": "backup/gpt-4o-mini",
        "attempts": 2,
        "status": 200,
        "latency_ms": 500.0,
    }


async def test_an_answer_without_standby_headers_logs_dashes(
    access: tuple[logging.Logger, Records],
) -> None:
    logger, records = access

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    await call(AccessLog(app, logger, Clock()), http_scope(method="GET", path="/nope"))

    [record] = records.records
    assert record.getMessage() == "- - GET /nope route=- target=- attempts=0 404 0.0ms"


async def test_an_application_error_is_logged_as_the_500_the_client_gets(
    access: tuple[logging.Logger, Records],
) -> None:
    logger, records = access

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await call(AccessLog(app, logger, Clock()), http_scope())
    [record] = records.records
    assert record.status == 500  # type: ignore[attr-defined]


async def test_when_info_is_off_requests_pass_straight_through(
    access: tuple[logging.Logger, Records],
) -> None:
    logger, records = access
    logger.setLevel(logging.WARNING)
    seen: list[Send] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(send)

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    await AccessLog(app, logger)(http_scope(), nothing, send)
    assert seen == [send]  # the server's own send, not a wrapper
    assert records.records == []


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
async def test_other_scopes_pass_through(access: tuple[logging.Logger, Records], kind: str) -> None:
    logger, records = access
    seen: list[Send] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(send)

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    await AccessLog(app, logger)({"type": kind}, nothing, send)
    assert seen == [send]
    assert records.records == []


def test_json_lines_carry_the_access_fields_and_nothing_uvicorn_adds() -> None:
    record = logging.LogRecord("standby.access", logging.INFO, __file__, 1, "%s %d", ("a", 2), None)
    record.status = 200
    record.route = "chat"
    record.color_message = "\x1b[1mcoloured\x1b[0m"
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry.pop("ts").endswith("+00:00")
    assert entry == {
        "level": "INFO",
        "logger": "standby.access",
        "message": "a 2",
        "status": 200,
        "route": "chat",
    }


def test_json_lines_carry_exceptions_on_one_line() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["message"] == "failed"
    assert "ValueError: bad" in entry["exc"]


async def test_a_real_gateway_logs_each_request_with_its_client_and_target(
    primary: SimProvider, caplog: pytest.LogCaptureFixture
) -> None:
    plan = {
        "providers": {"primary": {"kind": "openai-compatible", "base_url": primary.base_url}},
        "routes": {"gpt-4o-mini": {"targets": ["primary/gpt-4o-mini"]}},
        "server": {"client_keys": {"alice": hash_key("sk-alice")}},
    }
    caplog.set_level(logging.INFO, logger="standby.access")
    async with running_gateway(plan, data_dir=None) as gateway, aiohttp.ClientSession() as http:
        for stream in (False, True):
            async with http.post(
                f"{gateway.base_url}/chat/completions",
                json={
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": "hi"}],
                    "stream": stream,
                },
                headers={"authorization": "Bearer sk-alice"},
            ) as resp:
                assert resp.status == 200
                await resp.read()
        async with http.get(f"{gateway.root_url}/healthz") as resp:
            await resp.read()

    lines = [r for r in caplog.records if r.name == "standby.access"]
    assert [(r.method, r.path, r.status) for r in lines] == [  # type: ignore[attr-defined]
        ("POST", "/v1/chat/completions", 200),
        ("POST", "/v1/chat/completions", 200),
        ("GET", "/healthz", 200),
    ]
    for record in lines[:2]:
        assert record.client == "alice"  # type: ignore[attr-defined]
        assert record.target == "primary/gpt-4o-mini"  # type: ignore[attr-defined]
        assert record.attempts == 1  # type: ignore[attr-defined]
        assert record.latency_ms > 0  # type: ignore[attr-defined]
