"""A client leaving mid-stream (F21): the upstream is cancelled at once and the journal
keeps exactly what the client received, on every wire; ``server.on_disconnect: finish``
keeps the whole answer instead.

A real gateway, a real sim streaming one word per ``CHUNK_DELAY``, and a raw HTTP/1.1
client on an asyncio socket: it reads until it has a few words, at an event boundary,
and closes its socket there, so "what the client received" is every byte it read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from standby.journal.store import RequestRow
from standby.sim import Fault, SimProvider
from standby.testing import RunningGateway, running_gateway

MODEL = "gpt-4o-mini"
CHUNK_DELAY = 0.1  # the sim's pause before each word: the client closes well within one
WORDS = 12
READ_WORDS = 3  # words the client reads before it leaves
CANCEL_WITHIN = 0.1  # seconds from the client's close to the sim seeing its stream cut
WAIT = 10.0  # bound on every wait


class WatchedSim(SimProvider):
    """The sim, noting when its client (the gateway) closes a request on it mid-answer.

    The sim has no such record of its own (yet): a middleware notes a handler cancelled
    by aiohttp because its connection was lost (``handler_cancellation``).
    """

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.cut = asyncio.Event()
        self.cut_at = 0.0  # time.monotonic() of the first cut
        self.answered = asyncio.Event()  # a chat request ran to its end

    def app(self) -> web.Application:
        app = super().app()

        @web.middleware
        async def watch(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            try:
                response = await handler(request)
            except asyncio.CancelledError:
                if not self.cut.is_set():
                    self.cut_at = time.monotonic()
                    self.cut.set()
                raise
            self.answered.set()
            return response

        app.middlewares.append(watch)
        return app


@pytest.fixture
async def sim() -> AsyncIterator[WatchedSim]:
    provider = WatchedSim("sim", chunk_delay=CHUNK_DELAY, words=WORDS)
    async with provider:
        yield provider


def one_target_plan(sim: SimProvider, on_disconnect: str | None) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "providers": {
            "sim": {"kind": "openai-compatible", "base_url": sim.base_url, "api_key": "sk-x"}
        },
        "timeouts": {"connect": "1s", "first_token": "2s", "idle": "2s", "total": "20s"},
        "routes": {MODEL: {"targets": [f"sim/{MODEL}"]}},
    }
    if on_disconnect is not None:
        plan["server"] = {"on_disconnect": on_disconnect}
    return plan


@dataclass(frozen=True)
class Wire:
    name: str
    path: str
    body: dict[str, Any]
    text_of: Callable[[dict[str, Any]], str]  # the text delta an event carries ("" if none)


def _openai_text(event: dict[str, Any]) -> str:
    choices = event.get("choices") or [{}]
    return str((choices[0].get("delta") or {}).get("content") or "")


def _anthropic_text(event: dict[str, Any]) -> str:
    delta = event.get("delta") or {}
    if event.get("type") == "content_block_delta" and delta.get("type") == "text_delta":
        return str(delta["text"])
    return ""


def _responses_text(event: dict[str, Any]) -> str:
    return str(event["delta"]) if event.get("type") == "response.output_text.delta" else ""


MESSAGES = [{"role": "user", "content": "tell me"}]
WIRES = [
    Wire(
        "openai",
        "/v1/chat/completions",
        {"model": MODEL, "stream": True, "messages": MESSAGES},
        _openai_text,
    ),
    Wire(
        "anthropic",
        "/v1/messages",
        {"model": MODEL, "stream": True, "max_tokens": 200, "messages": MESSAGES},
        _anthropic_text,
    ),
    Wire(
        "responses",
        "/v1/responses",
        {"model": MODEL, "stream": True, "input": "tell me"},
        _responses_text,
    ),
]


@dataclass
class RawStream:
    """An SSE response read off the socket: HTTP/1.1 chunked framing, then events."""

    wire: Wire
    raw: bytearray = field(default_factory=bytearray)  # bytes after the response head
    body: bytearray = field(default_factory=bytearray)  # the de-chunked body
    text: str = ""  # the text of every complete event read
    words: int = 0  # text deltas among them

    def feed(self, data: bytes) -> None:
        self.raw += data
        while True:  # whole chunks only: ``size CRLF data CRLF``
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(self.raw[:line_end]), 16)
            end = line_end + 2 + size + 2
            if len(self.raw) < end:
                return
            self.body += self.raw[line_end + 2 : end - 2]
            del self.raw[:end]
            self._events()

    def _events(self) -> None:
        while (cut := self.body.find(b"\n\n")) >= 0:
            block, self.body[:] = bytes(self.body[:cut]), self.body[cut + 2 :]
            for line in block.split(b"\n"):
                if line.startswith(b"data:") and line[5:].strip().startswith(b"{"):
                    piece = self.wire.text_of(orjson.loads(line[5:]))
                    self.text += piece
                    self.words += bool(piece)

    @property
    def at_boundary(self) -> bool:
        """Nothing half-read: no partial chunk, no partial event."""
        return not self.raw and not self.body


async def leave_after(gw: RunningGateway, wire: Wire, words: int) -> tuple[RawStream, float]:
    """POST a stream, read until ``words`` text deltas have arrived, then close the socket.

    Returns what was read and the ``time.monotonic()`` of the close.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    payload = orjson.dumps(wire.body)
    writer.write(
        f"POST {wire.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    stream = RawStream(wire)
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower()
        while stream.words < words or not stream.at_boundary:
            data = await reader.read(65536)
            assert data, "the gateway ended the stream before the client left"
            stream.feed(data)
    closed = time.monotonic()
    writer.close()  # no await between the last read and the close: nothing more came in
    return stream, closed


async def final_row(gw: RunningGateway) -> RequestRow:
    """The one request of this gateway, once the journal has its final state."""
    service = gw.app.journal_service
    assert service is not None
    async with asyncio.timeout(WAIT):
        while True:  # each round waits for the journal writer: no busy loop
            await service.flush()
            rows = await service.store.list_requests(limit=5)
            if rows and rows[0].state != "accepted":
                assert len(rows) == 1
                return rows[0]


@pytest.mark.parametrize("wire", WIRES, ids=[w.name for w in WIRES])
async def test_a_client_leaving_cancels_the_upstream_and_journals_what_it_received(
    sim: WatchedSim, wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="standby.web")
    async with running_gateway(one_target_plan(sim, None)) as gw:  # the default: cancel
        got, closed = await leave_after(gw, wire, READ_WORDS)
        async with asyncio.timeout(WAIT):
            await sim.cut.wait()
        latency = sim.cut_at - closed
        row = await final_row(gw)
    print(f"{wire.name}: the sim saw the cancellation {latency * 1000:.1f} ms after the close")
    assert latency < CANCEL_WITHIN, f"upstream cancelled {latency * 1000:.0f} ms after the client"
    assert not sim.answered.is_set(), "the sim streamed its answer to the end"
    assert got.text and sim.expected_text().startswith(got.text)
    assert got.text != sim.expected_text()
    assert row.state == "client_gone"
    assert row.content_sent == got.text, "exactly what the client received"
    assert row.response is None and row.usage is None
    assert row.provider == "sim" and row.model == MODEL
    assert [outcome for _, outcome, _ in row.attempts] == ["client_gone"]
    gone = [r for r in caplog.records if "client left stream" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO
    assert row.rid in gone[0].getMessage()
    assert f"({len(got.text)} characters of text)" in gone[0].getMessage()


@pytest.mark.parametrize("wire", WIRES, ids=[w.name for w in WIRES])
async def test_on_disconnect_finish_runs_the_answer_to_its_end_and_journals_it_whole(
    sim: WatchedSim, wire: Wire
) -> None:
    async with running_gateway(one_target_plan(sim, "finish")) as gw:
        got, _ = await leave_after(gw, wire, READ_WORDS)
        async with asyncio.timeout(WAIT):
            await sim.answered.wait()
        row = await final_row(gw)
    assert not sim.cut.is_set()
    assert got.text != sim.expected_text()
    assert row.state == "completed"
    assert row.content_sent == sim.expected_text(), "the whole answer, not what was received"
    assert row.response is not None
    assert sim.expected_text() in orjson.dumps(row.response).decode()


async def test_a_client_gone_before_the_first_token_received_nothing(sim: WatchedSim) -> None:
    """It leaves while the first word is awaited: it is cancelled once the word comes,
    before anything is sent, and the journal says it received nothing."""
    sim.set_fault(Fault("silent", times=1))  # hold the gateway's request until released
    async with running_gateway(one_target_plan(sim, None)) as gw:
        _, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        payload = orjson.dumps(WIRES[0].body)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload
        )
        async with asyncio.timeout(WAIT):
            await sim.wait_held(1)  # the gateway is waiting on the sim's first word
        writer.close()
        sim.release()  # the first word follows CHUNK_DELAY later
        async with asyncio.timeout(WAIT):
            await sim.cut.wait()
        row = await final_row(gw)
    assert not sim.answered.is_set()
    assert row.state == "client_gone"
    assert row.content_sent == ""
