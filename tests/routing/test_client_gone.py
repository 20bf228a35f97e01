"""The stream engine and ``stream_response`` when the client leaves: what is cancelled,
what is journaled, and the send in flight, which the client never received.

A scripted provider hands out chunks as the test puts them; a scripted connection
records what is sent, can hang a send (a full socket) or fail it (``OSError``), and
answers ``receive()`` with ``http.disconnect`` once the test says the client is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

import orjson
import pytest

from standby.canonical import Call, Chunk, Deadlines, Reply
from standby.health.gate import OpenGate
from standby.plan.model import Plan
from standby.routing.router import Router
from standby.routing.streams import StreamRun
from standby.web.asgi import Message, stream_response

WAIT = 5.0  # bound on every wait
PLAN = Plan.model_validate(
    {
        "providers": {"a": {"base_url": "http://127.0.0.1:9"}},
        "routes": {"m": {"targets": ["a/m"]}},
    }
)
BODY: dict[str, Any] = {
    "model": "m",
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


def chunk(content: str = "", finish: str | None = None) -> Chunk:
    delta = {"content": content} if content else {}
    data = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return Chunk.parse(orjson.dumps(data), data)


class Upstream:
    """A provider with one stream, fed by the test; ``closed`` once the stream is closed."""

    name = "a"
    prefill = False

    def __init__(self) -> None:
        self.chunks: asyncio.Queue[Chunk | None] = asyncio.Queue()
        self.closed = asyncio.Event()

    @property
    def buffered(self) -> bool:
        return False

    async def next(self) -> Chunk | None:
        return await self.chunks.get()

    async def aclose(self) -> None:
        self.closed.set()

    async def open_stream(self, call: Call, deadlines: Deadlines) -> Upstream:
        return self

    async def send(self, call: Call, deadlines: Deadlines) -> Reply:
        raise NotImplementedError


class Journal:
    """Records the endings it is told (a ``JournalSink``)."""

    def __init__(self) -> None:
        self.endings: list[tuple[str, dict[str, Any]]] = []
        self.deltas: list[str] = []

    def accepted(self, rid: str, **fields: Any) -> None:
        pass

    def delta(self, rid: str, text: str) -> None:
        self.deltas.append(text)

    def completed(self, rid: str, **fields: Any) -> None:
        self.endings.append(("completed", fields))

    def failed(self, rid: str, **fields: Any) -> None:
        self.endings.append(("failed", fields))

    def client_gone(
        self,
        rid: str,
        *,
        completion_id: str,
        provider: str,
        model: str,
        sent: str,
        attempts: Sequence[tuple[str, str, float]],
    ) -> None:
        self.endings.append(
            (
                "client_gone",
                {"sent": sent, "attempts": [a[:2] for a in attempts], "id": completion_id},
            )
        )

    def deferred(self, rid: str, **fields: Any) -> None:
        pass


class Metrics:
    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def request_done(self, route: str, outcome: str, seconds: float) -> None:
        self.outcomes.append(outcome)

    def failover(self, route: str) -> None: ...
    def first_token(self, route: str, seconds: float) -> None: ...
    def continuation(self, route: str, outcome: str) -> None: ...


class Connection:
    """The client's side as ASGI sees it."""

    def __init__(self, *, hang_at: int | None = None, fail_at: int | None = None) -> None:
        self.bodies: list[bytes] = []  # what reached the client, one entry per send
        self.ended = False  # the last, empty body was sent
        self.gone = asyncio.Event()
        self.hanging = asyncio.Event()
        self.hang_at, self.fail_at = hang_at, fail_at  # which body send hangs or fails
        self.progress = asyncio.Condition()

    async def send(self, message: Message) -> None:
        if message["type"] != "http.response.body":
            return
        if not message.get("more_body"):
            self.ended = True
            return
        if len(self.bodies) == self.hang_at:
            self.hanging.set()
            await asyncio.Event().wait()  # a socket that never drains
        if len(self.bodies) == self.fail_at:
            raise ConnectionResetError("the client went away")
        if self.gone.is_set():
            return  # dropped, as uvicorn does
        async with self.progress:
            self.bodies.append(bytes(message["body"]))
            self.progress.notify_all()

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def wait_bodies(self, count: int) -> None:
        async with asyncio.timeout(WAIT), self.progress:
            await self.progress.wait_for(lambda: len(self.bodies) >= count)

    def text(self) -> str:
        text = ""
        for body in self.bodies:
            for event in body.split(b"\n\n"):
                payload = event.removeprefix(b"data: ")
                if payload.startswith(b"{"):
                    text += chunk_text(orjson.loads(payload))
        return text


def chunk_text(data: dict[str, Any]) -> str:
    return str(data["choices"][0]["delta"].get("content") or "")


class Stream:
    """One stream through the engine and ``stream_response``, served in its own task."""

    def __init__(
        self, connection: Connection, on_disconnect: Literal["cancel", "finish"] = "cancel"
    ) -> None:
        self.upstream = Upstream()
        self.journal = Journal()
        self.metrics = Metrics()
        self.connection = connection
        router = Router(PLAN, {"a": self.upstream}, OpenGate(), self.metrics)
        self.run = StreamRun(
            router,
            BODY,
            router.resolve("m"),
            journal=self.journal,
            rid="req_1",
            on_disconnect=on_disconnect,
        )

    async def start(self, *first: Chunk | None) -> asyncio.Task[None]:
        for item in first:
            self.upstream.chunks.put_nowait(item)
        await self.run.start()
        conn = self.connection
        return asyncio.create_task(
            stream_response(conn.send, [], self.run, receive=conn.receive), name="sender"
        )


async def finished(task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(WAIT):
        await task


async def test_leaving_while_the_upstream_is_awaited_cancels_it_and_keeps_all_that_was_sent() -> (
    None
):
    stream = Stream(Connection())
    task = await stream.start(chunk("Once "))
    stream.upstream.chunks.put_nowait(chunk("upon "))
    await stream.connection.wait_bodies(2)
    stream.connection.gone.set()
    await finished(task)  # the sender's cancellation is absorbed: the handler ends cleanly
    assert stream.upstream.closed.is_set()
    assert stream.connection.text() == "Once upon "
    assert stream.journal.endings == [
        (
            "client_gone",
            {"sent": "Once upon ", "attempts": [("a/m", "client_gone")], "id": "chatcmpl-1"},
        )
    ]
    assert stream.metrics.outcomes == ["client_gone"]
    assert not stream.connection.ended, "nothing is sent to a client that left"


async def test_the_send_in_flight_when_the_client_leaves_was_not_received() -> None:
    stream = Stream(Connection(hang_at=1))  # the second body never leaves: a full socket
    task = await stream.start(chunk("Once "))
    stream.upstream.chunks.put_nowait(chunk("upon "))
    async with asyncio.timeout(WAIT):
        await stream.connection.hanging.wait()
    stream.connection.gone.set()
    await finished(task)
    assert stream.upstream.closed.is_set()
    assert stream.journal.deltas == ["Once ", "upon "], "journaled before the send, as always"
    assert stream.journal.endings[0][1]["sent"] == "Once ", "but the client has only this"
    assert stream.connection.text() == "Once "


async def test_a_send_that_fails_was_not_received() -> None:
    stream = Stream(Connection(fail_at=1))  # what a server that raises on send does
    task = await stream.start(chunk("Once "))
    stream.upstream.chunks.put_nowait(chunk("upon "))
    await finished(task)
    assert stream.upstream.closed.is_set()
    assert [kind for kind, _ in stream.journal.endings] == ["client_gone"]
    assert stream.journal.endings[0][1]["sent"] == "Once "


async def test_on_disconnect_finish_runs_the_answer_out_unsent_and_journals_it_whole() -> None:
    stream = Stream(Connection(), on_disconnect="finish")
    task = await stream.start(chunk("Once "))
    await stream.connection.wait_bodies(1)
    stream.connection.gone.set()
    for piece in ("upon ", "a ", "time"):
        stream.upstream.chunks.put_nowait(chunk(piece))
    stream.upstream.chunks.put_nowait(chunk(finish="stop"))
    stream.upstream.chunks.put_nowait(None)
    await finished(task)
    assert stream.connection.text() == "Once "
    [(kind, fields)] = stream.journal.endings
    assert kind == "completed"
    assert fields["response"]["choices"][0]["message"]["content"] == "Once upon a time"
    assert stream.metrics.outcomes == ["ok"]


async def test_a_client_gone_before_the_first_send_received_nothing() -> None:
    connection = Connection()
    connection.gone.set()  # it left while the first token was awaited
    stream = Stream(connection)
    task = await stream.start(chunk("Once "))
    await finished(task)
    assert connection.bodies == []
    assert stream.journal.endings[0][1]["sent"] == ""
    assert stream.upstream.closed.is_set()
    assert stream.metrics.outcomes == ["client_gone"]


async def test_a_cancellation_from_elsewhere_still_propagates() -> None:
    stream = Stream(Connection())
    task = await stream.start(chunk("Once "))
    await stream.connection.wait_bodies(1)
    task.cancel()  # the server shutting down, say: not the client leaving
    with pytest.raises(asyncio.CancelledError):
        await finished(task)
    assert stream.upstream.closed.is_set()
    assert stream.journal.endings == [], "the row stays accepted: recovery marks it interrupted"


async def test_a_complete_answer_is_not_undone_by_a_late_disconnect() -> None:
    stream = Stream(Connection())
    task = await stream.start(chunk("Once "), chunk(finish="stop"), None)
    await finished(task)
    stream.connection.gone.set()
    assert stream.connection.ended
    assert [kind for kind, _ in stream.journal.endings] == ["completed"]
