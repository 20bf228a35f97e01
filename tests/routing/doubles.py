"""Test doubles for routing: scripted providers and their streams, a journal and metrics
that record what they are told, a client connection as ASGI sees it, a hand-moved clock
with timers, and a sleep that moves that clock instead of waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from standby.canonical import Call, Chunk, Deadlines, Reply
from standby.errors import ProviderError
from standby.web.asgi import Message

WAIT = 5.0  # bound on every wait


def chunk(content: str = "", finish: str | None = None, *, id: str = "chatcmpl-1") -> Chunk:
    delta = {"content": content} if content else {}
    data = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return Chunk.parse(orjson.dumps(data), data)


class Upstream:
    """A provider with one stream at a time, fed by the test; ``closed`` once the stream
    is closed.  With ``batches``, chunks put together are read together (``buffered``),
    as a socket read that carried several events."""

    prefill = False

    def __init__(self, name: str = "a", *, batches: bool = False) -> None:
        self.name = name
        self.batches = batches
        self.chunks: asyncio.Queue[Chunk | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.calls: list[Call] = []
        self.refuse: list[ProviderError] = []  # raised by the next opens, in order
        self._starved = asyncio.Event()  # the reader waits for a chunk not yet put

    @property
    def buffered(self) -> bool:
        return self.batches and not self.chunks.empty()

    def put(self, *items: Chunk | None) -> None:
        self._starved.clear()
        for item in items:
            self.chunks.put_nowait(item)

    async def drained(self) -> None:
        """Until the reader has taken every chunk put and waits for more."""
        async with asyncio.timeout(WAIT):
            await self._starved.wait()

    async def next(self) -> Chunk | None:
        if self.chunks.empty():
            self._starved.set()
        return await self.chunks.get()

    async def aclose(self) -> None:
        self.closed.set()

    async def open_stream(self, call: Call, deadlines: Deadlines) -> Upstream:
        self.calls.append(call)
        if self.refuse:
            raise self.refuse.pop(0)
        self.started = asyncio.get_running_loop().time()
        return self

    async def send(self, call: Call, deadlines: Deadlines) -> Reply:
        raise NotImplementedError


class Replies:
    """A provider for ``Router.complete``: each call takes the next scripted outcome."""

    prefill = False

    def __init__(self, name: str, *outcomes: ProviderError | Reply) -> None:
        self.name = name
        self.outcomes = list(outcomes)
        self.calls: list[Call] = []

    async def send(self, call: Call, deadlines: Deadlines) -> Reply:
        self.calls.append(call)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    async def open_stream(self, call: Call, deadlines: Deadlines) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def reply(model: str = "m") -> Reply:
    data = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
    }
    return Reply(orjson.dumps(data), data)


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
        self.failovers = 0
        self.continuations: list[str] = []

    def request_done(self, route: str, outcome: str, seconds: float) -> None:
        self.outcomes.append(outcome)

    def failover(self, route: str) -> None:
        self.failovers += 1

    def first_token(self, route: str, seconds: float) -> None: ...

    def continuation(self, route: str, outcome: str) -> None:
        self.continuations.append(outcome)


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


class Handle:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """A hand-moved clock with timers (``Timers``) and a sleep that moves it."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.handles: list[Handle] = []
        self.armed = asyncio.Event()  # set by every call_at
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> Handle:
        handle = Handle(when, callback)
        self.handles.append(handle)
        self.armed.set()
        return handle

    def pending(self) -> list[Handle]:
        return [h for h in self.handles if not h.cancelled]

    def advance(self, seconds: float) -> None:
        """Move the clock; run the timers that are due, in order (as the loop would)."""
        self.now += seconds
        while due := sorted(
            (h for h in self.pending() if h.when <= self.now), key=lambda h: h.when
        ):
            handle = due[0]
            self.handles.remove(handle)
            handle.callback()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
