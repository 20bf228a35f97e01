"""The simulated provider through a real socket and a real aiohttp client.

No test sleeps to wait for something: held connections are awaited with ``wait_held``
and released explicitly, configured delays are short, and every client call runs under
``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from standby.sim import Fault, SimProvider
from standby.sim.answers import ARGUMENT_PIECES, ARGUMENTS, split_pieces
from standby.sim.faults import OK, FaultState, Shape

HI = [{"role": "user", "content": "say hello to me"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
CUT = (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
Events = list[bytes]


@dataclass
class Client:
    """An aiohttp session aimed at one simulated provider."""

    sim: SimProvider
    http: aiohttp.ClientSession

    @property
    def text(self) -> str:
        return self.sim.expected_text()

    async def call(
        self,
        body: dict[str, Any] | None = None,
        *,
        path: str = "/chat/completions",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request, body read whole: status, headers, body."""
        body = {"model": "m", "messages": HI} if body is None else body
        url = self.sim.base_url + path
        async with (
            asyncio.timeout(5),
            self.http.request(method, url, json=body, headers=headers) as r,
        ):
            return r.status, dict(r.headers), await r.read()

    async def stream(self, body: dict[str, Any] | None = None) -> tuple[Events, Exception | None]:
        """The SSE payloads of a streamed chat, and the error that ended it early, if any."""
        body = {"model": "m", "messages": HI, "stream": True, **(body or {})}
        url, events = self.sim.base_url + "/chat/completions", []
        try:
            async with asyncio.timeout(5), self.http.post(url, json=body) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                async for line in resp.content:
                    if line.startswith(b"data: "):
                        events.append(line[6:].rstrip(b"\n"))
        except CUT as exc:
            return events, exc
        return events, None


@pytest.fixture
async def c() -> AsyncIterator[Client]:
    async with SimProvider("t", words=12) as sim, aiohttp.ClientSession() as http:
        yield Client(sim, http)


def content(raw: bytes) -> Any:
    return orjson.loads(raw)["choices"][0]["message"]["content"]


def chunks(events: Events) -> list[dict[str, Any]]:
    return [orjson.loads(e) for e in events if e != b"[DONE]" and not e.startswith(b"{not")]


def text_of(events: Events) -> str:
    return "".join(
        ch["choices"][0]["delta"].get("content") or "" for ch in chunks(events) if ch["choices"]
    )


async def test_json_reply_is_a_chat_completion(c: Client) -> None:
    status, _, raw = await c.call({"model": "gpt-x", "messages": HI, "n": 2})
    reply = orjson.loads(raw)
    assert (status, reply["object"], reply["model"]) == (200, "chat.completion", "gpt-x")
    assert reply["id"].startswith("chatcmpl-sim-") and reply["system_fingerprint"] == "fp_sim_t"
    assert [ch["index"] for ch in reply["choices"]] == [0, 1]
    assert reply["choices"][1]["message"] == {"role": "assistant", "content": c.text}
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"] == {"prompt_tokens": 4, "completion_tokens": 12, "total_tokens": 16}
    assert c.sim.requests[-1].fault == "ok" and c.sim.requests[-1].body["model"] == "gpt-x"


async def test_stream_shape_and_text(c: Client) -> None:
    events, error = await c.stream({"stream_options": {"include_usage": True}})
    parsed = chunks(events)
    assert error is None and events[-1] == b"[DONE]"
    assert parsed[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len(parsed) == 1 + 12 + 2 and len({ch["id"] for ch in parsed}) == 1
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert parsed[-2]["choices"] == [finish]
    assert parsed[-1]["choices"] == [] and parsed[-1]["usage"]["completion_tokens"] == 12
    assert text_of(events) == c.text == "".join(split_pieces(c.text))
    async with SimProvider(words=3, chunk_delay=0.01) as slow:
        events, error = await Client(slow, c.http).stream()
    assert error is None and text_of(events) == slow.expected_text()


ERRORS = [  # fault, (status, error type, code, Retry-After)
    (Fault("rate_limit", retry_after=2), (429, "rate_limit_error", "rate_limit_exceeded", "2")),
    (Fault("rate_limit"), (429, "rate_limit_error", "rate_limit_exceeded", None)),
    (Fault("error"), (500, "server_error", None, None)),
    (Fault("error", status=503, retry_after=0.5), (503, "server_error", None, "0.5")),
    (Fault("context_length"), (400, "invalid_request_error", "context_length_exceeded", None)),
    (Fault("content_policy"), (400, "invalid_request_error", "content_policy_violation", None)),
    (Fault("auth"), (401, "invalid_request_error", "invalid_api_key", None)),
    (Fault("auth", status=403), (403, "invalid_request_error", "invalid_api_key", None)),
    (Fault("auth", status=402), (402, "insufficient_quota", "insufficient_quota", None)),
    (Fault("flap", fraction=1.0), (503, "server_error", None, None)),
    (Fault("error_body_200"), (200, "server_error", None, None)),
]


@pytest.mark.parametrize(
    ("fault", "expected"), ERRORS, ids=[f"{f.kind}-{e[0]}-{e[3]}" for f, e in ERRORS]
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_error_faults(
    c: Client, fault: Fault, expected: tuple[Any, ...], streamed: bool
) -> None:
    c.sim.set_fault(fault)
    status, headers, raw = await c.call({"model": "m", "messages": HI, "stream": streamed})
    if streamed and fault.kind == "error_body_200":  # one SSE event carrying the error
        assert headers["Content-Type"].startswith("text/event-stream")
        assert raw.startswith(b"data: {") and b"[DONE]" not in raw
        raw = raw[6:]
    error = orjson.loads(raw)["error"]
    got = (status, error["type"], error["code"], headers.get("Retry-After"))
    assert got == expected and c.sim.requests[-1].fault == fault.kind
    wording = {"context_length": "maximum context length is", "content_policy": "safety system"}
    assert wording.get(fault.kind, "") in error["message"]


@pytest.mark.parametrize(("status", "streamed"), [(None, False), (502, True)])
async def test_html_error_page(c: Client, status: int | None, streamed: bool) -> None:
    c.sim.set_fault(Fault("html", status=status))
    got, headers, raw = await c.call({"model": "m", "messages": HI, "stream": streamed})
    assert got == (status or 200) and headers["Content-Type"].startswith("text/html")
    assert raw.startswith(b"<!DOCTYPE html>")


@pytest.mark.parametrize("streamed", [False, True])
async def test_reset_before_headers(c: Client, streamed: bool) -> None:
    c.sim.set_fault(Fault("reset"))
    with pytest.raises(CUT):
        await c.call({"model": "m", "messages": HI, "stream": streamed})
    assert [r.fault for r in c.sim.requests] == ["reset"]


async def test_cut_stream_and_malformed_body(c: Client) -> None:
    c.sim.set_fault(Fault("cut_stream", after=4))
    events, error = await c.stream()
    assert error is not None and b"[DONE]" not in events
    assert text_of(events) == "".join(split_pieces(c.text)[:4])
    with pytest.raises(aiohttp.ClientPayloadError):  # non-stream: half the declared body
        await c.call()
    c.sim.set_fault(Fault("malformed_event"))
    assert (await c.call())[::2] == (200, b"{not json")


async def test_stall_holds_until_released(c: Client) -> None:
    c.sim.set_fault(Fault("stall", after=2))
    task = asyncio.create_task(c.stream())
    async with asyncio.timeout(5):
        await c.sim.wait_held(1)
    assert not task.done() and c.sim.release() == 1
    events, error = await task
    assert error is None and text_of(events) == c.text and events[-1] == b"[DONE]"
    c.sim.set_fault(Fault("stall", delay=0.02))  # a timed stall ends by itself
    events, error = await c.stream()
    assert error is None and text_of(events) == c.text
    status, _, raw = await c.call()  # non-stream: half a body, pause, the rest
    assert status == 200 and content(raw) == c.text


@pytest.mark.parametrize("release", ["release", "clear", "stop"])
async def test_silent_holds_until_released(c: Client, release: str) -> None:
    c.sim.set_fault(Fault("silent"))
    task = asyncio.create_task(c.call())
    async with asyncio.timeout(5):
        await c.sim.wait_held(1)
    assert not task.done() and c.sim.stats()["held"] == 1
    if release == "stop":
        await c.sim.stop()
        with pytest.raises(CUT):
            await task
        return
    getattr(c.sim, release)()
    status, _, raw = await task
    assert status == 200 and content(raw) == c.text and c.sim.requests[0].fault == "silent"


@pytest.mark.parametrize("kind", ["latency", "slow_first_token"])
async def test_delays(c: Client, kind: str) -> None:
    c.sim.set_fault(Fault(kind, delay=0.05))
    start = time.monotonic()
    assert (await c.call())[0] == 200 and time.monotonic() - start >= 0.05


async def test_slow_first_token_with_early_headers(c: Client) -> None:
    c.sim.set_fault(Fault("slow_first_token", delay=0.5, headers_early=True))
    body, url = {"model": "m", "messages": HI, "stream": True}, c.sim.base_url + "/chat/completions"
    start = time.monotonic()
    async with asyncio.timeout(5), c.http.post(url, json=body) as resp:
        headers_at = time.monotonic() - start
        first = await resp.content.readline()
        first_at = time.monotonic() - start
        rest = await resp.read()
    assert resp.status == 200 and headers_at < 0.5 <= first_at
    assert text_of([e[6:] for e in (first + rest).split(b"\n\n") if e]) == c.text


@pytest.mark.parametrize(
    ("kind", "finish", "done"),
    [
        ("malformed_event", True, True),
        ("no_done", True, False),
        ("no_done_no_finish", False, False),
    ],
)
async def test_stream_end_faults(c: Client, kind: str, finish: bool, done: bool) -> None:
    c.sim.set_fault(Fault(kind, after=3))
    events, error = await c.stream({"stream_options": {"include_usage": True}})
    assert error is None and text_of(events) == c.text and (events[-1] == b"[DONE]") is done
    finishes = [ch["choices"][0]["finish_reason"] for ch in chunks(events) if ch["choices"]]
    assert any(finishes) is finish
    if kind == "malformed_event":
        assert events[4] == b"{not json"  # after the role chunk and 3 content chunks
    if kind == "no_done":
        assert chunks(events)[-1]["usage"]["total_tokens"] == 16


def convo(prefix: str, *, instruction: bool) -> dict[str, Any]:
    ask = [{"role": "user", "content": "Continue exactly where it stopped."}] if instruction else []
    return {"model": "m", "messages": [*HI, {"role": "assistant", "content": prefix}, *ask]}


@pytest.mark.parametrize("instruction", [False, True])
@pytest.mark.parametrize("cut", [0, 5, 12])
async def test_continuation_gives_the_exact_remainder(
    c: Client, instruction: bool, cut: int
) -> None:
    prefix = "".join(split_pieces(c.text)[:cut])
    _, _, raw = await c.call(convo(prefix, instruction=instruction))
    assert prefix + content(raw) == c.text
    spaced = convo(prefix + " ", instruction=instruction)  # trailing whitespace in the prefix
    events, _ = await c.stream({"messages": spaced["messages"]})
    assert text_of(events) == c.text[len(prefix) :].lstrip()


async def test_continuation_overlap_and_non_continuations(c: Client) -> None:
    async with SimProvider(words=8, overlap=6) as sim:
        c = Client(sim, c.http)
        prefix = "".join(split_pieces(c.text)[:3])
        for instruction in (False, True):
            _, _, raw = await c.call(convo(prefix, instruction=instruction))
            assert content(raw) == prefix[-6:] + c.text[len(prefix) :]
        assert content((await c.call(convo("Other", instruction=False)))[2]) == c.text
        body = convo(c.text, instruction=False)  # an ordinary next turn after a whole answer
        body["messages"].append({"role": "user", "content": "And again?"})
        assert content((await c.call(body))[2]) == c.text


async def test_prefill_rejections(c: Client) -> None:
    async with SimProvider(accepts_prefill=False) as strict:
        c = Client(strict, c.http)
        status, _, raw = await c.call(convo("Standby", instruction=False))
        assert status == 400 and "prefill" in orjson.loads(raw)["error"]["message"]
        assert (await c.call(convo("Standby", instruction=True)))[0] == 200
        strict.set_fault(Fault("reject_prefill"))
        assert (await c.call())[0] == 200  # not a prefill: the fault does not fire
        assert [r.fault for r in strict.requests] == ["ok", "ok", "ok"]
        status, _, raw = await c.call(convo("Standby", instruction=False))
        assert status == 400 and strict.requests[-1].fault == "reject_prefill"


async def test_tool_calls(c: Client) -> None:
    body = {"model": "m", "messages": HI, "tools": TOOLS}
    choice = orjson.loads((await c.call(body))[2])["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    function = {"name": "get_weather", "arguments": ARGUMENTS}
    assert choice["message"]["tool_calls"] == [
        {"id": "call_sim_1", "type": "function", "function": function}
    ]
    assert orjson.loads(ARGUMENTS) == {"city": "Paris", "unit": "celsius"}
    events, error = await c.stream(body)
    deltas = [ch["choices"][0]["delta"] for ch in chunks(events)]
    first = deltas[0]["tool_calls"][0]
    assert (first["id"], first["function"]["name"]) == ("call_sim_1", "get_weather")
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[:-1]) == ARGUMENTS
    assert error is None and chunks(events)[-1]["choices"][0]["finish_reason"] == "tool_calls"
    answered = [*HI, {"role": "tool", "tool_call_id": "call_sim_1", "content": "21C"}]
    events, _ = await c.stream({"messages": answered, "tools": TOOLS})
    assert text_of(events) == c.text


async def test_tool_call_cut_mid_arguments(c: Client) -> None:
    c.sim.set_fault(Fault("tool_call_cut", after=99))  # clamped: always inside the arguments
    events, error = await c.stream({"tools": TOOLS})
    args = "".join(
        ch["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for ch in chunks(events)
    )
    assert error is not None and args == "".join(ARGUMENT_PIECES[:-1])
    events, error = await c.stream()  # no tools: the fault does not fire
    assert error is None and text_of(events) == c.text
    assert [r.fault for r in c.sim.requests] == ["tool_call_cut", "ok"]


async def test_times_and_header_overrides(c: Client) -> None:
    c.sim.set_fault(Fault("error", times=2, status=502))
    headers = {"x-sim-fault": "rate_limit", "x-sim-status": "503", "x-sim-retry-after": "7"}
    status, got, _ = await c.call(headers=headers)  # this request only; times not consumed
    assert (status, got["Retry-After"]) == (503, "7") and c.sim.fault.kind == "error"
    assert (await c.call(headers={"x-sim-fault": "nonsense"}))[0] == 400
    assert [(await c.call())[0] for _ in range(3)] == [502, 502, 200] and c.sim.fault == OK
    assert c.sim.stats()["faults"] == {"rate_limit": 1, "error": 2, "ok": 1}


async def test_admin_over_http(c: Client) -> None:
    admin = "/../_sim/"
    status, _, _ = await c.call({"kind": "error", "status": "503"}, path=admin + "fault")
    assert status == 200 and c.sim.fault == Fault("error", status=503)
    assert (await c.call({"kind": "bogus"}, path=admin + "fault"))[0] == 400
    assert (await c.call())[0] == 503
    stats = orjson.loads((await c.call(method="GET", path=admin + "stats"))[2])
    assert (stats["count"], stats["faults"], stats["fault"]["status"]) == (1, {"error": 1}, 503)
    assert stats["requests"][0]["path"] == "/v1/chat/completions"
    await c.call(method="DELETE", path=admin + "fault")
    assert c.sim.fault == OK and (await c.call())[0] == 200
    assert orjson.loads((await c.call(path=admin + "release"))[2]) == {"released": 0}
    await c.call(path=admin + "reset")
    assert c.sim.requests == [] and c.sim.stats()["count"] == 0


async def test_embeddings_models_health(c: Client) -> None:
    body = {"model": "e", "input": ["a b", "c"]}
    status, _, raw = await c.call(body, path="/embeddings")
    data, usage = orjson.loads(raw)["data"], orjson.loads(raw)["usage"]
    assert status == 200 and [d["index"] for d in data] == [0, 1] and usage["prompt_tokens"] == 3
    assert all(len(d["embedding"]) == 8 for d in data) and data[0] != data[1]
    packed = {**body, "encoding_format": "base64"}
    b64 = orjson.loads((await c.call(packed, path="/embeddings"))[2])["data"][0]
    decoded = struct.unpack("<8f", base64.b64decode(b64["embedding"]))
    assert decoded == pytest.approx(data[0]["embedding"], abs=1e-6)
    c.sim.set_fault(Fault("error", times=1))
    assert (await c.call(body, path="/embeddings"))[0] == 500
    models = orjson.loads((await c.call(method="GET", path="/models"))[2])
    assert models["object"] == "list" and models["data"][0]["id"] == "sim-model"
    health = orjson.loads((await c.call(method="GET", path="/../health"))[2])
    assert health["status"] == "ok" and len(c.sim.requests) == 3  # models/health: not recorded


def test_fault_records_and_selection() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("meltdown")
    with pytest.raises(ValueError):
        Fault.from_json({"kind": "error", "sometimes": 1})
    parsed = Fault.from_json({"kind": "stall", "delay": "0.5", "headers_early": "true"})
    assert parsed == Fault("stall", delay=0.5, headers_early=True)

    def draws(seed: int) -> list[str]:
        state = FaultState()
        state.set(Fault("flap", fraction=0.5, seed=seed))
        return [state.select(Shape()).label for _ in range(40)]

    assert draws(3) == draws(3) and {"flap", "ok"} == set(draws(3))
    state = FaultState()
    state.set(Fault("no_done", times=2))
    assert state.select(Shape(stream=False)).label == "ok"  # counted, but not a stream
    assert state.select(Shape(stream=True)).label == "no_done" and state.fault == OK
