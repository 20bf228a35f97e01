"""The stream engine and ``stream_response`` when the client leaves: what is cancelled,
what is journaled, and the send in flight, which the client never received.

A scripted provider hands out chunks as the test puts them; a scripted connection
records what is sent, can hang a send (a full socket) or fail it (``OSError``), and
answers ``receive()`` with ``http.disconnect`` once the test says the client is gone.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest

from standby.canonical import Chunk
from standby.health.gate import OpenGate
from standby.plan.model import Plan
from standby.routing.router import Router
from standby.routing.streams import StreamRun
from standby.web.asgi import stream_response
from tests.routing.doubles import WAIT, Connection, Journal, Metrics, Upstream, chunk

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
        self.run: StreamRun = router.stream(
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
