"""The stream engine: one client stream, however many upstream attempts it takes.

Phases of a ``StreamRun``:
1. ``start()`` — attempts are opened until one yields its first content (a text delta, a
   tool call or a finish).  Nothing reaches the client before that, so any failure here
   is a plain failover, invisible to the caller.  The first content must arrive within
   the target's ``first_token`` deadline (F07, F08, stall after headers).
2. ``events()`` — chunks are forwarded as the exact bytes received (no re-serialising),
   everything already read in one send, while each wait for the next chunk may last
   ``idle`` (F10; one ``IdleWatchdog`` per attempt, not a timeout per chunk).  The text
   of each send is journaled once, before the send.  Tool-call deltas are held until
   the tool call is complete, so a cut in the middle of arguments (F23) leaves nothing
   half-sent and the call is restarted cleanly on the next target.
3. A break after content was sent (F09, F10) → the next candidate continues the same
   answer (prefill or instruction, ``routing.continuation``); its chunks are re-stamped
   with the stream's id and its overlap is stripped, so the client sees one stream.
   A target that rejects the prefill is retried in instruction mode (F15): the verdict
   says so (``outcomes``), and the health registry remembers it for later streams.
4. When nothing can continue, an OpenAI-style error event ends the stream, with no
   ``[DONE]``: a truncated answer is never presented as complete.

Every try, in the opening phase and for a continuation alike, goes through the request's
``Attempts`` (``routing.driver``): the one attempt loop, with the providers, deadlines,
metrics and clocks it was given.  The engine never sees the router.

A client that leaves mid-stream is reported by the web layer (``client_left``).  With
``on_disconnect="cancel"`` (the plan's ``server.on_disconnect``, default) the request is
journaled ``client_gone`` with exactly the text the client received and the web layer
stops ``events()``, which closes the upstream connection: the provider sees the
cancellation and no more tokens are paid for.  With ``"finish"`` the answer runs on to
its end upstream, unsent, and is journaled whole as ``completed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

import orjson

from standby.canonical import Call, Chunk, Deadlines
from standby.errors import (
    DeadlineExceeded,
    Exhausted,
    Overloaded,
    ProviderError,
    StandbyError,
    StreamBroken,
    UpstreamStatus,
)
from standby.providers.base import ChunkStream
from standby.routing.attempts import AttemptSchedule, Step, journal_attempts
from standby.routing.continuation import Splicer, continuation_body
from standby.routing.delivered import Delivered
from standby.routing.driver import Attempts
from standby.routing.policy import ResolvedRoute, Target, aim
from standby.routing.sink import JournalSink, NullJournal
from standby.routing.watchdog import IdleWatchdog

log = logging.getLogger("standby.streams")

DONE = b"data: [DONE]\n\n"

OnDisconnect = Literal["cancel", "finish"]


class StreamRun:
    """Drives one streaming chat completion across attempts."""

    def __init__(
        self,
        attempts: Attempts,
        body: dict[str, Any],
        *,
        journal: JournalSink | None = None,
        rid: str = "",
        on_disconnect: OnDisconnect = "cancel",
    ) -> None:
        self.attempts = attempts
        self.journal: JournalSink = journal or NullJournal()
        self.rid = rid
        self.on_disconnect = on_disconnect
        self.delivered = Delivered()
        self.body = body
        self._metrics = attempts.context.metrics
        self._clock = attempts.context.clock
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        n = body.get("n")
        self.choices = n if isinstance(n, int) and n > 1 else 1
        self._finishes = 0
        self.target: Target | None = None
        self._step: Step | None = None
        self._upstream: ChunkStream | None = None
        self._ready: list[Chunk] = []  # read from the upstream, not yet sent
        self._text: list[str] = []  # text of the send being rendered, journaled with it
        self._tools: list[Chunk] = []  # tool-call deltas held until the call is complete
        self._splicer: Splicer | None = None  # set while a continuation attempt is serving
        self._finished = False
        self._choices_seen: set[int] = set()  # choice indices seen, for n > 1
        self._choices_done: set[int] = set()  # … and those that finished
        self._role_sent = False  # the client has had a delta with the assistant role
        self._ended = False  # a final state was journaled
        self._gone = False  # the client left and the stream was cancelled
        self._closed = False  # aclose() ran

    @property
    def plan(self) -> AttemptSchedule:
        """The request's attempt schedule (its history is what the journal records)."""
        return self.attempts.plan

    @property
    def route(self) -> ResolvedRoute:
        return self.attempts.route

    @property
    def sent_text(self) -> str:
        return self.delivered.text

    @property
    def stream_id(self) -> str:
        return self.delivered.id

    @property
    def received_text(self) -> str:
        """The text handed to the client's connection (not counting a send in flight)."""
        return self.delivered.received_text

    def client_left(self) -> bool:
        """The client disconnected mid-stream: returns whether to stop ``events()`` now.

        With ``on_disconnect="cancel"`` the request is journaled ``client_gone`` with the
        text the client received, and the caller must stop (close) ``events()``, which
        closes the upstream connection.  With ``"finish"`` the caller runs ``events()`` to
        their end, unsent, and the whole answer is journaled as usual.
        """
        if self.on_disconnect == "finish":
            return False
        if not self._ended:  # the answer was not already journaled (complete or failed)
            self._ended = self._gone = True
            attempts = journal_attempts(self.plan.history)
            step = self.attempts.in_flight
            if step is not None:
                seconds = self.attempts.elapsed()
                attempts.append((step.target.key, "client_gone", round(seconds, 6)))
            target = self.target
            self.journal.client_gone(
                self.rid,
                completion_id=self.stream_id,
                provider=target.provider if target else "",
                model=target.model if target else "",
                sent=self.received_text,
                attempts=attempts,
            )
        return True

    # -- phase 1 -------------------------------------------------------------------------
    async def start(self) -> Target:
        """Open attempts until one produces content; raise the final error otherwise."""
        try:
            self.attempts.screen(self.body)
            step, _ = await self.attempts.run(self._open_original)
        except BaseException as exc:
            self.attempts.gave_up(exc)
            raise
        return step.target

    async def _open_original(self, step: Step, deadlines: Deadlines) -> None:
        await self._open(step, deadlines, self.body)

    async def _open(self, step: Step, deadlines: Deadlines, body: dict[str, Any]) -> None:
        """One try: open the stream and read up to its first content (not yet sent)."""
        self._step, self.target = step, step.target
        call = Call(
            endpoint="chat",
            body=aim(body, step.target),
            stream=True,
            continuation=self._splicer is not None,
        )
        try:
            async with asyncio.timeout(None) as within:
                # the provider bounds the open itself: a short wait for one of its
                # connection slots (Standby's own time, never the target's silence), then
                # the first-token deadline, which runs from the stream's ``started``
                self._upstream = await self.attempts.provider(step.target).open_stream(
                    call, deadlines
                )
                within.reschedule(self._upstream.started + deadlines.first_token)
                self.attempts.responded(step)
                while True:
                    chunk = await self._upstream.next()
                    if chunk is None:
                        raise StreamBroken(f"{step.target.key}: stream ended with no answer")
                    if self._splicer is not None and chunk.content:
                        chunk.content = self._splicer.feed(chunk.content)
                    self._ready.append(chunk)
                    if chunk.content or chunk.tool_calls or chunk.finish_reason:
                        break
        except TimeoutError as exc:
            await self._drop_attempt()
            raise DeadlineExceeded(
                f"{step.target.key}: no first token within {deadlines.first_token:g}s",
                phase="first_token",
            ) from exc
        except BaseException:
            await self._drop_attempt()
            raise
        if not self.stream_id:
            first = self._ready[0].data
            self.delivered.id = str(first.get("id") or f"chatcmpl-{uuid.uuid4().hex}")
            created = first.get("created")
            self.delivered.created = created if isinstance(created, int) else int(time.time())
        self._metrics.first_token(self.route.name, self._clock() - self.plan.started)

    # -- phases 2 to 4 -------------------------------------------------------------------
    async def events(self) -> AsyncGenerator[bytes, None]:
        """SSE bytes for the client, from the first content to ``[DONE]`` or an error."""
        outcome = "error"
        try:
            while True:
                try:
                    async for out in self._forward():
                        yield out
                        # back for more: the web layer has handed ``out`` to the client
                        self.delivered.received = len(self.delivered.text_parts)
                    outcome = "ok"
                    self._journal_completed()
                    yield DONE
                    return
                except ProviderError as error:
                    log.warning("stream from %s broke: %s", error.target, error.message)
                    try:
                        await self._continue_after(error)
                    except StandbyError as final:
                        self._metrics.continuation(self.route.name, "failed")
                        event = _error_event(final)
                        if not self._ended:
                            self._ended = True
                            self.journal.failed(
                                self.rid,
                                status=502,
                                response=event[6:-2],
                                attempts=journal_attempts(self.plan.history),
                            )
                        yield event
                        return
                    self._metrics.continuation(self.route.name, "ok")
        finally:
            await self.aclose(outcome)

    async def aclose(self, outcome: str = "error") -> None:
        """Free what the run holds, once: the try in flight and the upstream connection
        (closing it is how a provider learns that a client left), then count the request.
        """
        if self._closed:
            return
        self._closed = True
        self.attempts.abandon()  # a try cut short by cancellation frees what it holds
        await self._drop_upstream()
        self.attempts.done("client_gone" if self._gone else outcome)

    async def _forward(self) -> AsyncIterator[bytes]:
        assert self._step is not None and self._upstream is not None
        step, upstream = self._step, self._upstream
        # once content flows only the idle deadline applies: ``total`` bounds the
        # attempts and failovers, not a healthy answer that streams for long
        task = asyncio.current_task()
        assert task is not None
        idle = self.attempts.timeouts(step.target).idle
        timers = self.attempts.context.timers or asyncio.get_running_loop()
        watchdog = IdleWatchdog(timers, idle, task)
        try:
            while True:
                if self._ready:  # everything already read goes out in one send
                    out = self._render_ready()
                    if out:
                        yield out
                    if self._finished and not self.include_usage:
                        self._success()
                        return
                watchdog.waiting()
                try:
                    chunk = await upstream.next()
                except asyncio.CancelledError:
                    if not watchdog.expired():
                        raise
                    if self._finished:
                        break  # complete answer; only the usage chunk went missing
                    raise DeadlineExceeded(
                        f"{step.target.key}: stream idle for {idle:g}s",
                        phase="idle",
                        target=step.target.key,
                    ) from None
                except ProviderError:
                    if self._finished:
                        break
                    raise
                finally:
                    watchdog.done_waiting()
                if chunk is None:
                    break
                self._take(chunk)
                while upstream.buffered:  # already decoded: no wait, no timer
                    more = await upstream.next()
                    if more is None:
                        break
                    self._take(more)
        finally:
            watchdog.stop()
        if not (self._finished or self._ended_whole()):
            raise StreamBroken(f"{step.target.key}: stream ended without finishing")
        self._success()

    def _render_ready(self) -> bytes:
        """The chunks read so far as one send; its text is journaled once, before it."""
        ready = self._ready
        batch = []
        taken = 0
        for chunk in ready:
            taken += 1
            batch.append(self._emit(chunk))
            if self._finished and not self.include_usage:
                break
        del ready[:taken]
        if self._text:
            text = self._text[0] if len(self._text) == 1 else "".join(self._text)
            self._text.clear()
            self.delivered.text_parts.append(text)
            self.journal.delta(self.rid, text)  # on disk before the client has it
        return b"".join(batch)

    def _ended_whole(self) -> bool:
        """The upstream ended cleanly with every choice it started finished: a target
        that gives fewer choices than ``n`` asked for (Claude has no ``n``; a Gemini
        model may give fewer candidates) answered in full, as its non-streamed reply
        would."""
        return bool(self._choices_done) and self._choices_seen <= self._choices_done

    def _take(self, chunk: Chunk) -> None:
        if self._splicer is not None and chunk.content:
            chunk.content = self._splicer.feed(chunk.content)
        self._ready.append(chunk)

    def _success(self) -> None:
        assert self._step is not None
        self.attempts.succeeded(self._step)

    def _emit(self, chunk: Chunk) -> bytes:
        if chunk.tool_calls and not chunk.finish_reason:
            self._tools.append(chunk)
            return b""
        out = b"".join(self._render(held) for held in self._tools)
        for held in self._tools:
            self.delivered.add_tool_calls(held)
        self._tools.clear()
        if chunk.choice is not None:
            self._choices_seen.add(chunk.choice)
        if chunk.finish_reason:
            self.delivered.finish_reason = chunk.finish_reason
            self._finishes += 1
            self._choices_done.add(chunk.choice or 0)
            self._finished = self._finishes >= self.choices
            if self._splicer is not None and (rest := self._splicer.flush()):
                out = self._rewrite_text(rest) + out
        if self._splicer is not None:
            if chunk.role_only and self._role_sent:
                return out  # the continuing target's role chunk: the client has had one
            if not (
                chunk.role_only
                or chunk.content
                or chunk.finish_reason
                or chunk.usage
                or chunk.tool_calls
            ):
                return out  # held back by the splicer
        if chunk.content:
            self._text.append(chunk.content)
        if chunk.usage:
            self.delivered.usage = chunk.usage
        return out + self._render(chunk)

    def _render(self, chunk: Chunk) -> bytes:
        if self._splicer is None:
            if not self._role_sent:
                self._role_sent = b'"role"' in chunk.raw
            return b"data: " + chunk.raw + b"\n\n"  # the fast path: bytes as received
        data = chunk.data
        data["id"] = self.stream_id
        choices = data.get("choices")
        if choices and isinstance(choices[0], dict) and isinstance(choices[0].get("delta"), dict):
            delta = choices[0]["delta"]
            if self._role_sent:
                delta.pop("role", None)
            elif "role" in delta:
                self._role_sent = True
            if "content" in delta:
                delta["content"] = chunk.content
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def _rewrite_text(self, text: str) -> bytes:
        self._text.append(text)
        data = {
            "id": self.stream_id,
            "object": "chat.completion.chunk",
            "model": self.target.model if self.target else "",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
        return b"data: " + orjson.dumps(data) + b"\n\n"

    async def _continue_after(self, error: ProviderError) -> None:
        assert self._step is not None
        await self._drop_attempt()
        step = self.attempts.failed(self._step, error, mid_answer=bool(self.sent_text))
        if self.choices > 1:  # n parallel answers cannot be spliced one by one
            self.attempts.abandon()
            raise StreamBroken(
                f"{error.message}; a stream of {self.choices} choices cannot be continued"
            )
        await self.attempts.run(self._open_continuation, step)

    async def _open_continuation(self, step: Step, deadlines: Deadlines) -> None:
        """One try at continuing the answer: the text sent so far goes in as an assistant
        prefill where the target takes one, else with an instruction to go on."""
        sent = self.sent_text
        prefill = bool(sent) and self.attempts.prefill(step)
        body = continuation_body(self.body, sent, prefill=prefill) if sent else self.body
        self._splicer = Splicer(sent)
        await self._open(step, deadlines, body)

    def _journal_completed(self) -> None:
        if self._ended:
            return
        self._ended = True
        target = self.target
        model = target.model if target else ""
        self.journal.completed(
            self.rid,
            completion_id=self.stream_id,
            provider=target.provider if target else "",
            model=model,
            response=self.delivered.completion(model),
            usage=self.delivered.usage,
            attempts=journal_attempts(self.plan.history),
        )

    async def _drop_attempt(self) -> None:
        """The try failed: close its upstream and forget what it read but did not send
        (a tool call in flight is restarted whole by the next target, F23)."""
        self._ready.clear()
        self._tools.clear()
        await self._drop_upstream()

    async def _drop_upstream(self) -> None:
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            await upstream.aclose()


def _error_event(error: StandbyError) -> bytes:
    if isinstance(error, Overloaded):
        message, code = error.message, "gateway_overloaded"
    elif isinstance(error, Exhausted):
        message, code = error.message, "upstream_unavailable"
    elif isinstance(error, UpstreamStatus):
        message, code = error.message, error.kind
    else:
        message, code = str(error), "stream_interrupted"
    payload = {
        "error": {
            "message": f"The answer was interrupted and could not be completed: {message}",
            "type": "server_error",
            "param": None,
            "code": code,
        }
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"
