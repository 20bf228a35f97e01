"""The caller's own mistakes, in OpenAI's error shape, and secrets that never leak.

Unknown model → 404 ``model_not_found``; unparseable JSON → 400; an oversized body → 413;
wrong types → 400 naming the ``param``. None of these reaches a provider. Provider keys
never appear in ``/standby/health``, ``/metrics`` or any error body, and the client's own
key is never forwarded upstream.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import openai
import orjson
import pytest

from standby.sim import Fault, SimProvider
from tests.conftest import two_target_plan
from tests.e2e.faults_support import CLIENT_KEY, MESSAGES, SECRETS, Gateway, serve

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
CHAT = "/v1/chat/completions"
JSON = {"content-type": "application/json"}


def _error(status: int, body: bytes, headers: Any, expected_status: int) -> dict[str, Any]:
    assert status == expected_status, body
    assert headers["Content-Type"].startswith("application/json")
    error: dict[str, Any] = orjson.loads(body)["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["message"]
    return error


@STREAMS
async def test_unknown_model_is_a_404_model_not_found(
    primary: SimProvider, backup: SimProvider, stream: bool
) -> None:
    async with serve(two_target_plan(primary, backup)) as gw:
        with pytest.raises(openai.NotFoundError) as caught:
            await gw.ask(stream=stream, model="no-such-model")
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert primary.requests == backup.requests == []


async def test_malformed_json_is_a_400(primary: SimProvider, backup: SimProvider) -> None:
    async with serve(two_target_plan(primary, backup)) as gw:
        status, body, headers = await gw.http("POST", CHAT, b'{"model": "gpt-4o-mini",', JSON)
        array = await gw.http("POST", CHAT, b"[1, 2]", JSON)
    assert _error(status, body, headers, 400)["type"] == "invalid_request_error"
    assert _error(*array, 400)["type"] == "invalid_request_error"
    assert primary.requests == backup.requests == []


async def _chunked(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 256):
        yield data[start : start + 256]


@pytest.fixture
async def small_gateway(primary: SimProvider, backup: SimProvider) -> AsyncIterator[Gateway]:
    async with serve(two_target_plan(primary, backup, server={"max_body": "1kb"})) as gw:
        yield gw


async def test_oversized_body_is_a_413(
    small_gateway: Gateway, primary: SimProvider, backup: SimProvider
) -> None:
    big = [{"role": "user", "content": "x" * 2000}]
    with pytest.raises(openai.APIStatusError) as caught:
        await small_gateway.ask(stream=False, messages=big)
    payload = orjson.dumps({"model": "gpt-4o-mini", "messages": big})
    chunked = await small_gateway.http("POST", CHAT, _chunked(payload), JSON)
    fits = await small_gateway.ask(stream=False)  # a small body still passes
    assert caught.value.status_code == 413
    assert caught.value.code == "request_too_large"
    assert _error(*chunked, 413)["code"] == "request_too_large"
    assert fits.text == primary.expected_text()
    assert len(primary.requests) == 1


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"stream": "yes"}, "stream"),
        ({"n": 0}, "n"),
        ({"n": "2"}, "n"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"content": "no role"}]}, "messages[0]"),
    ],
    ids=[
        "stream-yes",
        "n-zero",
        "n-string",
        "messages-empty",
        "messages-string",
        "message-without-role",
    ],
)
async def test_wrong_types_are_a_400_naming_the_param(
    primary: SimProvider, backup: SimProvider, change: dict[str, Any], param: str
) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, **change})
    async with serve(two_target_plan(primary, backup)) as gw:
        status, raw, headers = await gw.http("POST", CHAT, body, JSON)
        with pytest.raises(openai.BadRequestError) as caught:  # the same through the SDK
            await gw.client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_body=change
            )
    error = _error(status, raw, headers, 400)
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert caught.value.param == param
    assert primary.requests == backup.requests == []


async def test_keys_never_leak(
    primary: SimProvider, backup: SimProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve(two_target_plan(primary, backup)) as gw:
        ok = await gw.ask(stream=False)
        primary.set_fault(Fault("auth", status=401))
        backup.set_fault(Fault("error", status=503))
        with pytest.raises(openai.InternalServerError) as plain:
            await gw.ask(stream=False)
        with pytest.raises(openai.InternalServerError) as streamed:
            await gw.ask(stream=True)
        health = await gw.http("GET", "/standby/health")
        metrics = await gw.http("GET", "/metrics")
    assert ok.provider == "primary"
    texts = [
        plain.value.response.text,
        streamed.value.response.text,
        health[1].decode(),
        metrics[1].decode(),
        caplog.text,
    ]
    for text in texts:
        for secret in (*SECRETS, CLIENT_KEY):
            assert secret not in text
    sent = {r.headers.get("authorization") for r in primary.requests}
    assert sent == {"Bearer sk-primary-secret"}, "each provider gets its own key only"
    for sim in (primary, backup):
        for request in sim.requests:
            assert CLIENT_KEY not in repr(request.headers), "the caller's key stays here"
