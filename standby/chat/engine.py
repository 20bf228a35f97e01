"""The chat page's answers: each one a task of its own, streamed through the gateway's
routes, kept in the conversation as it arrives, and never lost.

``ChatEngine.send`` stores the question, an empty answer (``streaming``) and starts a
``Generation``: a task that opens the answer on the route of the chosen model — the same
router, breakers and journal as the API's requests, so failover before the first token
and continuation after a mid-answer break work here as there — and stores the text as
it comes (every ``checkpoint`` seconds and at the end).  The task belongs to the
engine, not to the browser's connection: a reload or a closed tab does not stop it, and
the page attaches to it again (``Generation.follow``).  ``stop`` ends it: the upstream
connection is closed (the provider stops generating) and the text so far is kept.

When nothing can answer now, the answer is *queued*: it waits in the conversation, and
the engine tries the queued answers again every ``retry_every`` seconds (at low
priority: no one is waiting at the screen for them), completing each when a target
returns.  Queued answers of an earlier run are picked up at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from standby.chat.model import Message, State, Thread
from standby.chat.store import ChatStore
from standby.errors import ClientError, Exhausted, StandbyError
from standby.journal.events import RequestIds
from standby.routing.attempts import journal_attempts
from standby.routing.router import Router
from standby.routing.sink import JournalSink
from standby.routing.streams import StreamRun
from standby.translate.openai_stream import delta_from_openai

log = logging.getLogger("standby.chat")

CHECKPOINT = 0.5  # seconds between two saves of an answer's text as it streams
RETRY_EVERY = 2.0  # seconds between two rounds of queued answers
MAX_EVENTS = 4096  # events a follower may fall behind before it is dropped
Event = tuple[str, dict[str, Any]]  # (kind, data): start, target, delta, continued, end


@dataclass(eq=False)
class Generation:
    """One answer being written, and the pages following it."""

    owner: str | None
    conversation_id: str
    message_id: str
    model: str
    text: str = ""
    provider: str | None = None
    answered_by: str | None = None  # the model answering (the last, after a continuation)
    continued: bool = False
    began_on: str | None = None  # a continued answer: the target it began on
    state: State = "streaming"
    task: asyncio.Task[None] | None = None
    run: StreamRun | None = None
    _followers: list[asyncio.Queue[Event | None]] = field(default_factory=list)

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        for queue in list(self._followers):
            try:
                queue.put_nowait((kind, data))
            except asyncio.QueueFull:  # a page that stopped reading: it reloads
                self._followers.remove(queue)

    def finish(self) -> None:
        for queue in self._followers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._followers.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "text": self.text,
            "provider": self.provider,
            "model": self.answered_by,
            "continued": self.continued,
            "began_on": self.began_on,
            "state": self.state,
        }

    async def follow(self) -> AsyncIterator[Event]:
        """What happened so far (one ``snapshot``), then every event until the end."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(MAX_EVENTS)
        self._followers.append(queue)
        try:
            yield "snapshot", self.snapshot()
            if self.state != "streaming":
                return
            while (event := await queue.get()) is not None:
                yield event
        finally:
            with contextlib.suppress(ValueError):
                self._followers.remove(queue)


class ChatEngine:
    def __init__(
        self,
        store: ChatStore,
        router: Callable[[], Router],
        journal: JournalSink,
        *,
        default_model: Callable[[], str],
        checkpoint: float = CHECKPOINT,
        retry_every: float = RETRY_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``router``: the current plan's (a reload swaps it); ``default_model``: what
        a question asks when the page names no model."""
        self.store = store
        self.router = router
        self.journal = journal
        self.default_model = default_model
        self.checkpoint = checkpoint
        self.retry_every = retry_every
        self.clock = clock
        self._ids = RequestIds()
        self.running: dict[str, Generation] = {}  # answer's message id → its generation
        self.queued: dict[str, Generation] = {}  # answers waiting for a target
        self._wake = asyncio.Event()

    # -- asking --------------------------------------------------------------------------
    async def send(
        self,
        owner: str | None,
        conversation_id: str | None,
        content: str,
        *,
        parent_id: str | None = None,
        model: str | None = None,
    ) -> tuple[Message, Generation]:
        """Store ``content`` as a question (under ``parent_id``: an edit is a sibling of
        the question it replaces) and start its answer; a new conversation when
        ``conversation_id`` is None."""
        model = model or self.default_model()
        self.router().resolve(model)  # an unknown model is the caller's 404, before storing
        if conversation_id is None:
            conversation = await self.store.create(owner, title=_title(content))
            conversation_id = conversation.id
        question = await self.store.add_message(
            owner, conversation_id, role="user", content=content, parent_id=parent_id
        )
        answer = await self.store.add_message(
            owner,
            conversation_id,
            role="assistant",
            parent_id=question.id,
            model=model,
            state="streaming",
        )
        generation = Generation(owner, conversation_id, answer.id, model)
        self._start(generation)
        return question, generation

    def _start(self, generation: Generation) -> None:
        generation.state = "streaming"
        self.running[generation.message_id] = generation
        generation.task = asyncio.get_running_loop().create_task(
            self._generate(generation), name=f"chat-{generation.message_id}"
        )

    def generation(self, message_id: str) -> Generation | None:
        return self.running.get(message_id) or self.queued.get(message_id)

    async def stop(self, owner: str | None, message_id: str) -> bool:
        """Stop an answer being written: the provider's connection is closed, the text so
        far kept (``stopped``).  False: no such answer is running for ``owner``."""
        generation = self.running.get(message_id) or self.queued.get(message_id)
        if generation is None or (owner is not None and generation.owner != owner):
            return False
        if generation.run is not None:
            generation.run.client_left()  # journaled as the client leaving, with its text
        queued = self.queued.pop(message_id, None)
        if generation.task is not None and not generation.task.done():
            generation.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await generation.task
        elif queued is not None:
            await self._end(generation, "stopped")
        return True

    # -- one answer ----------------------------------------------------------------------
    async def _generate(self, generation: Generation) -> None:
        try:
            await self._answer(generation)
        except asyncio.CancelledError:
            await self._end(generation, "stopped")
            raise
        except Exception:
            log.exception("chat: the answer %s failed", generation.message_id)
            await self._end(generation, "failed")
        finally:
            self.running.pop(generation.message_id, None)

    async def _answer(self, generation: Generation) -> None:
        thread = await self.store.get(generation.owner, generation.conversation_id)
        if thread is None:  # deleted meanwhile
            generation.state = "failed"
            generation.finish()
            return
        router = self.router()
        body = {
            "model": generation.model,
            "messages": _history(thread, generation.message_id),
            "stream": True,
        }
        try:
            route = router.resolve(generation.model)
        except ClientError as error:
            generation.emit("error", {"message": error.message})
            await self._end(generation, "failed")
            return
        rid = self._ids()
        raw = orjson.dumps(body)
        self.journal.accepted(
            rid,
            endpoint="chat",
            route=route.name,
            model=generation.model,
            stream=True,
            raw_body=raw,
            metadata={"standby_chat": generation.conversation_id},
            store=False,
            client=generation.owner,
        )
        run = router.stream(body, route, journal=self.journal, rid=rid)
        try:
            target = await run.start()
        except Exhausted as exhausted:
            tried = journal_attempts(run.plan.history)
            self.journal.failed(rid, status=503, response=b"", attempts=tried)
            await self._queue(generation, exhausted)
            return
        except StandbyError as error:
            tried = journal_attempts(run.plan.history)
            self.journal.failed(rid, status=502, response=b"", attempts=tried)
            generation.emit("error", {"message": str(error)})
            await self._end(generation, "failed")
            return
        generation.run = run
        generation.provider, generation.answered_by = target.provider, target.model
        await self.store.update_message(
            generation.owner,
            generation.message_id,
            provider=target.provider,
            model=target.model,
            request_id=rid,
            state="streaming",
        )
        generation.emit("target", {"provider": target.provider, "model": target.model})
        serving, saved = target, self.clock()
        ended: State = "failed"
        async for out in run.events():
            text, finished = _read(out)
            if run.target is not None and run.target != serving:
                serving = run.target
                generation.continued = True
                generation.began_on = generation.began_on or f"{target.provider}/{target.model}"
                generation.provider, generation.answered_by = serving.provider, serving.model
                generation.emit("continued", {"provider": serving.provider, "model": serving.model})
            if text:
                generation.text += text
                generation.emit("delta", {"text": text})
            if finished:
                ended = "done"
            if self.clock() - saved >= self.checkpoint:
                saved = self.clock()
                await self.store.update_message(
                    generation.owner, generation.message_id, content=generation.text
                )
        generation.continued = generation.continued or any(
            record.mid_answer for record in run.plan.history
        )
        await self._end(generation, ended)

    async def _end(self, generation: Generation, state: State) -> None:
        generation.state = state
        run = generation.run
        text = run.sent_text if run is not None else generation.text
        generation.text = text or generation.text
        with contextlib.suppress(StandbyError):
            await self.store.update_message(
                generation.owner,
                generation.message_id,
                content=generation.text,
                state=state,
                continued=generation.continued,
                provider=generation.provider,
                model=generation.answered_by,
                extra={"began_on": generation.began_on} if generation.began_on else None,
            )
        generation.emit("end", generation.snapshot())
        generation.finish()

    async def _queue(self, generation: Generation, why: Exhausted) -> None:
        """Nothing answers now: the answer waits, and is tried again later."""
        first = generation.message_id not in self.queued
        generation.state = "queued"
        self.queued[generation.message_id] = generation
        if first:
            await self.store.update_message(generation.owner, generation.message_id, state="queued")
            generation.emit(
                "queued",
                {
                    "message": "No provider can answer right now; your question is kept "
                    "and will be answered as soon as one returns.",
                    "detail": why.message,
                },
            )
        generation.finish()

    # -- queued answers ------------------------------------------------------------------
    async def run(self) -> None:
        """Try the queued answers again, every ``retry_every`` seconds, until cancelled."""
        await self._recover()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.retry_every):
                    await self._wake.wait()
            self._wake.clear()
            for message_id, generation in list(self.queued.items()):
                if message_id in self.running:
                    continue
                del self.queued[message_id]
                self._start(generation)
                assert generation.task is not None
                with contextlib.suppress(asyncio.CancelledError):
                    await generation.task  # one at a time: a recovering target is not stormed
                if generation.state == "queued":
                    break  # still nothing: the next round

    def retry_now(self) -> None:
        """Try the queued answers at once (a target came back)."""
        self._wake.set()

    async def _recover(self) -> None:
        """Queued answers of an earlier run, and answers a crash left ``streaming``."""
        try:
            pending = await self.store.pending()
        except Exception as exc:  # the database is away: the page still serves history
            log.warning("chat: could not read the queued answers: %s", exc)
            return
        for owner, message in pending:
            generation = Generation(
                owner, message.conversation_id, message.id, message.model or self.default_model()
            )
            generation.state = "queued"
            self.queued[message.id] = generation
        if pending:
            log.info("chat: %d answers wait for a provider", len(pending))

    async def aclose(self) -> None:
        for generation in list(self.running.values()):
            if generation.task is not None:
                generation.task.cancel()
        for generation in list(self.running.values()):
            if generation.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await generation.task


def _read(out: bytes) -> tuple[str, bool]:
    """The text in a batch of the stream engine's SSE bytes, and whether it ended it."""
    text: list[str] = []
    finished = False
    for event in out.split(b"\n\n"):
        payload = event.strip().removeprefix(b"data:").strip()
        if not payload:
            continue
        if payload == b"[DONE]":
            finished = True
            continue
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(chunk, dict) and "error" not in chunk:
            text.extend(delta.text for delta in delta_from_openai(chunk) if delta.text)
    return "".join(text), finished


def _history(thread: Thread, answer_id: str) -> list[dict[str, str]]:
    """The branch up to the answer being written, as the messages a model reads: answers
    that never came (queued, failed and empty) are left out."""
    messages = []
    for message in thread.branch(answer_id):
        if message.id == answer_id:
            break
        if message.role == "assistant" and not message.content:
            continue
        if message.role in ("system", "user", "assistant"):
            messages.append({"role": message.role, "content": message.content})
    return messages


def _title(content: str) -> str:
    """A new conversation's title: its first question's first line, shortened."""
    line = content.strip().splitlines()[0] if content.strip() else "New conversation"
    return line if len(line) <= 60 else line[:57].rstrip() + "…"
