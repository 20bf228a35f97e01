"""The simulated provider's Anthropic and Gemini wires, through a real socket.

Table-driven: each test runs against both wires through a ``WireClient`` that knows
how to phrase a conversation and read a reply in its wire's shape. Held connections
are awaited with ``wait_held`` and released explicitly; nothing sleeps for timing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from standby.sim import Fault, SimProvider
from standby.sim.answers import ARGUMENT_PIECES, split_pieces

CUT = (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
ARGS = {"city": "Paris", "unit": "celsius"}
Turns = list[tuple[str, str]]  # (user | assistant | tool, text)
Event = tuple[str, Any]  # (SSE event name or "", parsed data or the raw bytes)
HI: Turns = [("user", "say hello to me")]
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


class WireClient:
    """One wire of one sim: phrases requests and reads replies in that wire's shape."""

    name = ""

    def __init__(self, sim: SimProvider, http: aiohttp.ClientSession) -> None:
        self.sim, self.http = sim, http

    def url(self, stream: bool) -> str:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def body(self, turns: Turns, *, stream: bool = False, tools: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def text(self, reply: dict[str, Any]) -> str:
        raise NotImplementedError

    def stream_text(self, events: list[Event]) -> str:
        raise NotImplementedError

    def error(self, status: int, headers: Any, reply: dict[str, Any]) -> tuple[Any, ...]:
        """(status, error type, message, retry hint)."""
        raise NotImplementedError

    async def post(
        self, body: dict[str, Any], *, stream: bool = False, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, bytes]:
        url, sent = self.url(stream), {**self.headers(), **(headers or {})}
        async with asyncio.timeout(5), self.http.post(url, json=body, headers=sent) as r:
            return r.status, r.headers, await r.read()

    async def call(self, turns: Turns = HI, **options: Any) -> dict[str, Any]:
        status, _, raw = await self.post(self.body(turns, **options))
        assert status == 200, raw
        reply: dict[str, Any] = orjson.loads(raw)
        return reply

    async def stream(
        self,
        turns: Turns = HI,
        *,
        tools: bool = False,
    ) -> tuple[list[Event], Exception | None]:
        """The SSE events of a streamed answer, and the error that ended it early."""
        raw, error = b"", None
        body = self.body(turns, stream=True, tools=tools)
        try:
            async with (
                asyncio.timeout(5),
                self.http.post(self.url(True), json=body, headers=self.headers()) as r,
            ):
                assert r.status == 200 and r.content_type == "text/event-stream"
                async for piece in r.content.iter_any():
                    raw += piece
        except CUT as exc:
            error = exc
        return sse(raw), error


def sse(raw: bytes) -> list[Event]:
    """Complete SSE events (name, JSON data, or the bytes when not JSON)."""
    events: list[Event] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n")[:-1]:
        lines: dict[bytes, bytes] = {}
        for line in block.split(b"\n"):
            key, _, value = line.partition(b": ")
            lines[key] = value
        try:
            data = orjson.loads(lines[b"data"])
        except orjson.JSONDecodeError:
            data = lines[b"data"]
        events.append((lines.get(b"event", b"").decode(), data))
    return events


class Anthropic(WireClient):
    name = "anthropic"

    def url(self, stream: bool) -> str:
        return self.sim.root_url + "/v1/messages"

    def headers(self) -> dict[str, str]:
        return {"x-api-key": "sk-ant-sim", "anthropic-version": "2023-06-01"}

    def body(self, turns: Turns, *, stream: bool = False, tools: bool = False) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for role, text in turns:
            if role == "tool":
                use = {
                    "type": "tool_use",
                    "id": "toolu_sim_1",
                    "name": "get_weather",
                    "input": ARGS,
                }
                result = {"type": "tool_result", "tool_use_id": "toolu_sim_1", "content": text}
                messages += [
                    {"role": "assistant", "content": [use]},
                    {"role": "user", "content": [result]},
                ]
            else:  # an image counts for nothing in the prompt size
                image = [{"type": "image", "source": PNG}] if role == "user" else []
                messages.append({"role": role, "content": [*image, {"type": "text", "text": text}]})
        body = {
            "model": "claude-sim",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": messages,
            "stream": stream,
        }
        schema = {"type": "object", "properties": {"city": {"type": "string"}}}
        return body | (
            {"tools": [{"name": "get_weather", "description": "Weather.", "input_schema": schema}]}
            if tools
            else {}
        )

    def text(self, reply: dict[str, Any]) -> str:
        return "".join(block["text"] for block in reply["content"])

    def stream_text(self, events: list[Event]) -> str:
        return "".join(
            d["delta"].get("text", "") for name, d in events if name == "content_block_delta"
        )

    def error(self, status: int, headers: Any, reply: dict[str, Any]) -> tuple[Any, ...]:
        assert reply["type"] == "error"
        error = reply["error"]
        return status, error["type"], error["message"], headers.get("Retry-After")


class Gemini(WireClient):
    name = "gemini"

    def url(self, stream: bool) -> str:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.sim.root_url}/v1beta/models/gemini-sim:{method}"

    def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": "AIza-sim"}

    def body(self, turns: Turns, *, stream: bool = False, tools: bool = False) -> dict[str, Any]:
        contents: list[dict[str, Any]] = []
        for role, text in turns:
            if role == "tool":
                call = {"functionCall": {"name": "get_weather", "args": ARGS}}
                answer = {"functionResponse": {"name": "get_weather", "response": {"t": text}}}
                contents += [
                    {"role": "model", "parts": [call]},
                    {"role": "user", "parts": [answer]},
                ]
            else:
                image = [{"inlineData": {"mimeType": PNG["media_type"], "data": PNG["data"]}}]
                contents.append(
                    {
                        "role": {"assistant": "model"}.get(role, role),
                        "parts": [*(image if role == "user" else []), {"text": text}],
                    }
                )
        body = {
            "contents": contents,
            "system_instruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 999},
        }
        declaration = {"name": "get_weather", "description": "Weather.", "parameters": {}}
        return body | ({"tools": [{"functionDeclarations": [declaration]}]} if tools else {})

    def text(self, reply: dict[str, Any]) -> str:
        return "".join(part.get("text", "") for part in reply["candidates"][0]["content"]["parts"])

    def stream_text(self, events: list[Event]) -> str:
        return "".join(self.text(d) for _, d in events if isinstance(d, dict))

    def error(self, status: int, headers: Any, reply: dict[str, Any]) -> tuple[Any, ...]:
        error = reply["error"]
        delays = [d["retryDelay"] for d in error.get("details", []) if "retryDelay" in d]
        assert error["code"] == (status if status != 200 else 500)
        return status, error["status"], error["message"], delays[0] if delays else None


WIRES: dict[str, type[WireClient]] = {"anthropic": Anthropic, "gemini": Gemini}


@pytest.fixture
async def sim_http() -> AsyncIterator[tuple[SimProvider, aiohttp.ClientSession]]:
    async with SimProvider("t", words=12) as sim, aiohttp.ClientSession() as http:
        yield sim, http


@pytest.fixture(params=list(WIRES))
def w(
    request: pytest.FixtureRequest, sim_http: tuple[SimProvider, aiohttp.ClientSession]
) -> WireClient:
    return WIRES[request.param](*sim_http)


def finishes(w: WireClient, events: list[Event]) -> list[str]:
    """The stop reasons a stream carried (``message_delta`` / ``finishReason``)."""
    if w.name == "anthropic":
        return [d["delta"]["stop_reason"] for name, d in events if name == "message_delta"]
    return [
        d["candidates"][0]["finishReason"]
        for _, d in events
        if isinstance(d, dict) and "finishReason" in d["candidates"][0]
    ]


async def test_plain_answers(w: WireClient) -> None:
    reply = await w.call()
    assert w.text(reply) == w.sim.expected_text() and w.sim.requests[-1].fault == "ok"
    if isinstance(w, Anthropic):
        assert reply["id"].startswith("msg_sim_") and reply["model"] == "claude-sim"
        assert (reply["type"], reply["role"], reply["stop_reason"]) == (
            "message",
            "assistant",
            "end_turn",
        )
        assert reply["stop_sequence"] is None
        assert reply["usage"] == {"input_tokens": 6, "output_tokens": 12}
    else:
        assert reply["candidates"][0]["finishReason"] == "STOP"
        assert reply["modelVersion"] == "gemini-sim" and reply["responseId"].startswith("sim_")
        assert reply["usageMetadata"] == {
            "promptTokenCount": 6,
            "candidatesTokenCount": 12,
            "totalTokenCount": 18,
        }
    assert w.sim.requests[-1].path == w.url(False).split("?")[0].removeprefix(w.sim.root_url)


async def test_streamed_answers(w: WireClient) -> None:
    events, error = await w.stream()
    assert error is None and w.stream_text(events) == w.sim.expected_text()
    assert b"[DONE]" not in orjson.dumps([d for _, d in events if isinstance(d, dict)])
    assert finishes(w, events) == ["end_turn" if w.name == "anthropic" else "STOP"]
    if isinstance(w, Anthropic):
        names = [name for name, _ in events]
        assert names == [
            "message_start",
            "content_block_start",
            "ping",
            *["content_block_delta"] * 12,
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        assert events[0][1]["message"]["content"] == []
        assert events[0][1]["message"]["usage"]["input_tokens"] == 6
        assert events[-2][1]["usage"] == {"output_tokens": 12}
    else:
        assert len(events) == 13 and events[-1][1]["usageMetadata"]["totalTokenCount"] == 18
        assert all("usageMetadata" not in d for _, d in events[:-1])
    async with SimProvider(words=3, chunk_delay=0.01) as slow:
        events, error = await type(w)(slow, w.http).stream()
    assert error is None and w.stream_text(events) == slow.expected_text()


async def test_max_tokens_truncates(w: WireClient) -> None:
    body = w.body(HI)
    if isinstance(w, Anthropic):
        body["max_tokens"] = 5
    else:
        body["generationConfig"]["maxOutputTokens"] = 5
    reply = orjson.loads((await w.post(body))[2])
    assert w.text(reply) == "".join(split_pieces(w.sim.expected_text())[:5])
    reason = reply.get("stop_reason") or reply["candidates"][0]["finishReason"]
    assert reason in ("max_tokens", "MAX_TOKENS")


async def test_tool_calls(w: WireClient) -> None:
    reply = await w.call(tools=True)
    events, error = await w.stream(tools=True)
    if isinstance(w, Anthropic):
        call = {"type": "tool_use", "id": "toolu_sim_1", "name": "get_weather", "input": ARGS}
        assert reply["content"] == [call] and reply["stop_reason"] == "tool_use"
        assert events[1][1]["content_block"] == {**call, "input": {}}
        pieces = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
        assert pieces == list(ARGUMENT_PIECES) and finishes(w, events) == ["tool_use"]
    else:
        parts = reply["candidates"][0]["content"]["parts"]
        assert parts == [{"functionCall": {"name": "get_weather", "args": ARGS}}]
        assert events[0][1]["candidates"][0]["content"]["parts"] == parts
        assert finishes(w, events) == ["STOP"]
    assert error is None
    answered = await w.call([*HI, ("tool", "21C")], tools=True)
    assert w.text(answered) == w.sim.expected_text()
    if isinstance(w, Anthropic):
        declined: dict[str, Any] = {"tool_choice": {"type": "none"}}
    else:
        declined = {"toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}
    reply = orjson.loads((await w.post(w.body(HI, tools=True) | declined))[2])
    assert w.text(reply) == w.sim.expected_text()
    if isinstance(w, Anthropic):  # a named tool is the one called
        named = w.body(HI, tools=True)
        named["tools"].append({"name": "get_time", "input_schema": {"type": "object"}})
        named["tool_choice"] = {"type": "tool", "name": "get_time"}
        assert orjson.loads((await w.post(named))[2])["content"][0]["name"] == "get_time"


@pytest.mark.parametrize("instruction", [False, True])
@pytest.mark.parametrize("cut", [0, 5, 12])
async def test_continuation(w: WireClient, instruction: bool, cut: int) -> None:
    full = w.sim.expected_text()
    prefix = "".join(split_pieces(full)[:cut])
    ask: Turns = [("user", "Continue exactly where it stopped.")] if instruction else []
    turns: Turns = [*HI, ("assistant", prefix), *ask]
    assert prefix + w.text(await w.call(turns)) == full
    events, _ = await w.stream(turns)
    assert prefix + w.stream_text(events) == full
    async with SimProvider(words=12, overlap=4) as sim:
        reply = await type(w)(sim, w.http).call(turns)
    assert w.text(reply) == prefix[-4:] + full[len(prefix) :]


async def test_prefill_rules(w: WireClient) -> None:
    spaced: Turns = [*HI, ("assistant", "Standby keeps ")]
    async with SimProvider(accepts_prefill=False) as strict:
        client = type(w)(strict, w.http)
        status, _, raw = await client.post(client.body([*HI, ("assistant", "Standby")]))
        strict.set_fault(Fault("reject_prefill"))
        faulted = await client.post(client.body([*HI, ("assistant", "Standby")]))
        spaced_status, _, spaced_raw = await client.post(client.body(spaced))
    if isinstance(w, Anthropic):  # prefill is a feature there: never rejected
        assert (status, faulted[0]) == (200, 200)
        assert [r.fault for r in strict.requests] == ["ok", "ok", "ok"]
        assert spaced_status == 400 and b"trailing whitespace" in spaced_raw
    else:
        assert (status, faulted[0]) == (400, 400) and b"user role" in raw
        assert strict.requests[1].fault == "reject_prefill" and spaced_status == 400
        text = w.text(await w.call(spaced))
        assert text == w.sim.expected_text()[len("Standby keeps") :].lstrip()


ERRORS = [  # wire, fault, (status, type, words of the message, retry hint)
    ("anthropic", Fault("rate_limit", retry_after=2), (429, "rate_limit_error", "rate", "2")),
    ("anthropic", Fault("error"), (500, "api_error", "Internal", None)),
    ("anthropic", Fault("error", status=529), (529, "overloaded_error", "Overloaded", None)),
    ("anthropic", Fault("flap", fraction=1.0), (503, "overloaded_error", "Overloaded", None)),
    (
        "anthropic",
        Fault("context_length"),
        (400, "invalid_request_error", "prompt is too long: 200001 tokens > 200000", None),
    ),
    ("anthropic", Fault("content_policy"), (400, "invalid_request_error", "Usage Policy", None)),
    ("anthropic", Fault("auth"), (401, "authentication_error", "x-api-key", None)),
    ("anthropic", Fault("auth", status=403), (403, "permission_error", "permission", None)),
    ("anthropic", Fault("auth", status=402), (402, "billing_error", "credit", None)),
    ("anthropic", Fault("error_body_200"), (200, "overloaded_error", "Overloaded", None)),
    ("gemini", Fault("rate_limit", retry_after=2), (429, "RESOURCE_EXHAUSTED", "quota", "2s")),
    ("gemini", Fault("error"), (500, "INTERNAL", "internal error", None)),
    ("gemini", Fault("error", status=503), (503, "UNAVAILABLE", "overloaded", None)),
    ("gemini", Fault("flap", fraction=1.0), (503, "UNAVAILABLE", "overloaded", None)),
    ("gemini", Fault("context_length"), (400, "INVALID_ARGUMENT", "input token count", None)),
    ("gemini", Fault("auth"), (403, "PERMISSION_DENIED", "permission", None)),
    ("gemini", Fault("auth", status=400), (400, "INVALID_ARGUMENT", "API key not valid", None)),
    ("gemini", Fault("auth", status=401), (401, "UNAUTHENTICATED", "credentials", None)),
    ("gemini", Fault("error_body_200"), (200, "INTERNAL", "internal error", None)),
]


@pytest.mark.parametrize(
    ("wire", "fault", "expected"), ERRORS, ids=[f"{n}-{f.kind}-{e[0]}" for n, f, e in ERRORS]
)
@pytest.mark.parametrize("stream", [False, True])
async def test_error_faults(
    sim_http: tuple[SimProvider, aiohttp.ClientSession],
    wire: str,
    fault: Fault,
    expected: tuple[Any, ...],
    stream: bool,
) -> None:
    w = WIRES[wire](*sim_http)
    w.sim.set_fault(fault)
    status, headers, raw = await w.post(w.body(HI, stream=stream), stream=stream)
    if stream and fault.kind == "error_body_200":  # one SSE event carrying the error
        [(name, data)] = sse(raw)
        assert headers["Content-Type"].startswith("text/event-stream")
        assert name == ("error" if wire == "anthropic" else "")
        raw = orjson.dumps(data)
    got = w.error(status, headers, orjson.loads(raw))
    assert got[:2] + got[3:] == expected[:2] + expected[3:] and expected[2] in got[2]
    assert w.sim.requests[-1].fault == fault.kind


@pytest.mark.parametrize("stream", [False, True])
async def test_content_policy_blocks_gemini_with_a_200(
    sim_http: tuple[SimProvider, aiohttp.ClientSession], stream: bool
) -> None:
    w = Gemini(*sim_http)
    w.sim.set_fault(Fault("content_policy"))
    status, _, raw = await w.post(w.body(HI, stream=stream), stream=stream)
    [(_, reply)] = sse(raw) if stream else [("", orjson.loads(raw))]
    assert status == 200 and "candidates" not in reply
    assert reply["promptFeedback"]["blockReason"] == "SAFETY"


async def test_html_reset_and_delays(w: WireClient) -> None:
    w.sim.set_fault(Fault("html", status=502, times=1))
    status, headers, raw = await w.post(w.body(HI))
    assert status == 502 and headers["Content-Type"].startswith("text/html")
    assert raw.startswith(b"<!DOCTYPE html>")
    w.sim.set_fault(Fault("reset", times=1))
    with pytest.raises(CUT):
        await w.post(w.body(HI))
    for kind in ("latency", "slow_first_token"):
        w.sim.set_fault(Fault(kind, delay=0.05, times=1))
        start = time.monotonic()
        events, _ = await w.stream()
        assert time.monotonic() - start >= 0.05 and w.stream_text(events) == w.sim.expected_text()


async def test_cuts_stalls_and_bad_events(w: WireClient) -> None:
    full, pieces = w.sim.expected_text(), split_pieces(w.sim.expected_text())
    w.sim.set_fault(Fault("cut_stream", after=4, times=1))
    events, error = await w.stream()
    assert error is not None and w.stream_text(events) == "".join(pieces[:4])
    assert finishes(w, events) == []
    w.sim.set_fault(Fault("malformed_event", after=3, times=1))
    events, error = await w.stream()
    assert (
        error is None and w.stream_text(events) == full and b"{not json" in [d for _, d in events]
    )
    w.sim.set_fault(Fault("stall", after=2, times=1))
    task = asyncio.create_task(w.stream())
    async with asyncio.timeout(5):
        await w.sim.wait_held(1)
    assert not task.done() and w.sim.release() == 1
    events, error = await task
    assert error is None and w.stream_text(events) == full
    w.sim.set_fault(Fault("silent", times=1))
    held = asyncio.create_task(w.call())
    async with asyncio.timeout(5):
        await w.sim.wait_held(1)
    w.sim.clear()
    assert w.text(await held) == full


@pytest.mark.parametrize("kind", ["no_done", "no_done_no_finish"])
async def test_streams_without_their_end(w: WireClient, kind: str) -> None:
    w.sim.set_fault(Fault(kind))
    events, error = await w.stream()
    assert error is None and w.stream_text(events) == w.sim.expected_text()
    names = [name for name, _ in events]
    if isinstance(w, Anthropic):
        assert "message_stop" not in names and ("message_delta" in names) is (kind == "no_done")
    else:
        assert finishes(w, events) == []
    assert w.sim.requests[-1].fault == kind


async def test_tool_call_cut(w: WireClient) -> None:
    w.sim.set_fault(Fault("tool_call_cut", after=99))
    events, error = await w.stream(tools=True)
    assert error is not None
    if isinstance(w, Anthropic):  # always inside the arguments
        pieces = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
        assert pieces == list(ARGUMENT_PIECES[:-1])
    else:  # a Gemini function call comes whole: the cut comes before it
        assert events == []
    events, error = await w.stream()  # no tools: the fault does not fire
    assert error is None and [r.fault for r in w.sim.requests] == ["tool_call_cut", "ok"]


async def test_times_headers_clear_and_stats(w: WireClient) -> None:
    w.sim.set_fault(Fault("error", times=2, status=503))
    override = {"x-sim-fault": "rate_limit"}
    assert (await w.post(w.body(HI), headers=override))[0] == 429
    assert (await w.post(w.body(HI), headers={"x-sim-fault": "nonsense"}))[0] == 400
    assert [(await w.post(w.body(HI)))[0] for _ in range(3)] == [503, 503, 200]
    w.sim.set_fault(Fault("error"))
    w.sim.clear()
    assert (await w.post(w.body(HI)))[0] == 200
    stats = w.sim.stats()
    assert stats["faults"] == {"rate_limit": 1, "error": 2, "ok": 2} and stats["count"] == 5
    assert stats["requests"][0]["body"] == w.body(HI)


async def test_requests_a_real_endpoint_refuses(w: WireClient) -> None:
    async def status(body: dict[str, Any], headers: dict[str, str], url: str = "") -> int:
        async with (
            asyncio.timeout(5),
            w.http.post(url or w.url(False), json=body, headers=headers) as r,
        ):
            return r.status

    body = w.body(HI)
    if isinstance(w, Anthropic):
        assert await status(body, {}) == 401
        assert await status(body, {"x-api-key": "k"}) == 400  # no anthropic-version
        assert await status({**body, "max_tokens": None}, w.headers()) == 400
        assert await status({**body, "messages": []}, w.headers()) == 400
    else:
        assert await status(body, {}) == 403
        assert await status(body, {}, w.url(False) + "?key=AIza-sim") == 200
        assert await status(body, w.headers(), w.url(True).removesuffix("?alt=sse")) == 400
        assert await status({"contents": []}, w.headers()) == 400
        assert await status(body, w.headers(), w.url(False).replace(":gen", ":bogusGen")) == 404


async def test_the_official_anthropic_sdk(sim_http: tuple[SimProvider, Any]) -> None:
    anthropic = pytest.importorskip("anthropic")
    sim = sim_http[0]
    client = anthropic.AsyncAnthropic(api_key="sk-ant-sim", base_url=sim.root_url, max_retries=0)
    hi = [{"role": "user", "content": "say hello to me"}]
    tools = [
        {
            "name": "get_weather",
            "description": "Weather.",
            "input_schema": {"type": "object", "properties": {}},
        }
    ]
    ask = {"model": "claude-sim", "max_tokens": 256, "messages": hi}
    async with client:
        message = await client.messages.create(**ask, system="Be brief.")
        assert message.content[0].text == sim.expected_text() and message.model == "claude-sim"
        assert (message.usage.input_tokens, message.usage.output_tokens) == (6, 12)
        async with client.messages.stream(**ask) as stream:
            text = "".join([piece async for piece in stream.text_stream])
            final = await stream.get_final_message()
        assert text == sim.expected_text() and final.stop_reason == "end_turn"
        prefill = {**ask, "messages": [*hi, {"role": "assistant", "content": "Standby keeps"}]}
        rest = (await client.messages.create(**prefill)).content[0].text
        assert "Standby keeps" + rest == sim.expected_text()
        called = await client.messages.create(**ask, tools=tools)
        assert (called.content[0].type, called.content[0].input) == ("tool_use", ARGS)
        async with client.messages.stream(**ask, tools=tools) as stream:
            final = await stream.get_final_message()
        assert final.content[0].input == ARGS and final.stop_reason == "tool_use"
        for fault, status in [
            (Fault("rate_limit"), 429),
            (Fault("error", status=529), 529),
            (Fault("auth"), 401),
            (Fault("context_length"), 400),
        ]:
            sim.set_fault(fault)
            with pytest.raises(anthropic.APIStatusError) as caught:
                await client.messages.create(**ask)
            assert caught.value.status_code == status
        sim.set_fault(Fault("error_body_200"))
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
            async with client.messages.stream(**ask) as stream:
                await stream.get_final_message()
