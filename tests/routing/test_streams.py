"""The stream engine on an injected attempt context: scripted upstreams, a hand-moved
clock with timers, a recording journal.  No router, no network, no sleeping."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from standby.errors import UpstreamStatus
from standby.health.gate import OpenGate, RegistryGate
from standby.health.registry import HealthRegistry
from standby.metrics import Metrics as PrometheusMetrics
from standby.plan.model import BreakerConfig, Retry, Timeouts
from standby.routing.attempts import AttemptSchedule, HealthGate, journal_attempts
from standby.routing.continuation import INSTRUCTION
from standby.routing.driver import AttemptContext, Attempts
from standby.routing.policy import ResolvedRoute, Target
from standby.routing.streams import StreamRun
from standby.web.asgi import stream_response
from tests.routing.doubles import WAIT, Clock, Connection, Journal, Metrics, Upstream, chunk

A, B = Target("a", "m"), Target("b", "m")
TIMEOUTS = Timeouts(connect=1, first_token=1, idle=1, total=20)
BODY: dict[str, Any] = {
    "model": "m",
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


class Engine:
    """One ``StreamRun`` over upstreams ``a`` then ``b``, its context built by hand."""

    def __init__(
        self, *upstreams: Upstream, gate: HealthGate | None = None, clock: Clock | None = None
    ) -> None:
        self.clock = clock or Clock()
        self.journal = Journal()
        self.metrics = Metrics()
        self.upstreams = {u.name: u for u in upstreams}
        context = AttemptContext(
            providers=self.upstreams,
            timeouts={name: TIMEOUTS for name in self.upstreams},
            metrics=self.metrics,
            clock=self.clock,
            sleep=self.clock.sleep,
            timers=self.clock,
        )
        targets = [t for t in (A, B) if t.provider in self.upstreams]
        plan = AttemptSchedule(
            candidates=targets,
            gate=gate or OpenGate(),
            timeouts=TIMEOUTS,
            retry=Retry(),
            clock=self.clock,
            rng=random.Random(1),
        )
        route = ResolvedRoute("m", tuple((t,) for t in targets))
        self.run = StreamRun(Attempts(context, route, plan), BODY, journal=self.journal, rid="r")

    async def read_all(self) -> bytes:
        """``events()`` to their end, as one body."""
        out = b""
        async with asyncio.timeout(WAIT):
            async for data in self.run.events():
                out += data
        return out


def text_of(body: bytes) -> str:
    connection = Connection()
    connection.bodies = [body]
    return connection.text()


# -- F10: a stall hits the idle deadline of the one watchdog, then continues ---------------


async def test_a_stall_is_cut_by_the_idle_watchdog_and_continued_elsewhere() -> None:
    a, b = Upstream("a"), Upstream("b")
    engine = Engine(a, b)
    a.put(chunk("Once "))
    await engine.run.start()
    b.put(chunk("upon a time", id="chatcmpl-b"), chunk(finish="stop", id="chatcmpl-b"), None)
    reading = asyncio.create_task(engine.read_all())
    async with asyncio.timeout(WAIT):
        await engine.clock.armed.wait()  # the engine waits for a's next chunk
    engine.clock.advance(TIMEOUTS.idle - 0.01)
    assert not reading.done()
    engine.clock.advance(0.01)
    body = await reading
    assert text_of(body) == "Once upon a time"
    assert b'"chatcmpl-b"' not in body, "one stream, one id"
    assert body.endswith(b"data: [DONE]\n\n")
    assert a.closed.is_set()
    assert [(r.target, r.outcome) for r in engine.run.plan.history] == [
        ("a/m", "timeout_idle"),
        ("b/m", "ok"),
    ]
    # the journal says the break came mid-answer (what reports count as continued)
    assert [a[3:] for a in journal_attempts(engine.run.plan.history)] == [("mid_answer",), ()]
    messages = b.calls[0].body["messages"]
    assert messages[-2:] == [
        {"role": "assistant", "content": "Once "},
        {"role": "user", "content": INSTRUCTION},
    ]
    assert engine.metrics.continuations == ["ok"] and engine.metrics.outcomes == ["ok"]
    assert engine.clock.pending() == [], "no timer outlives the stream"


async def test_a_healthy_stream_arms_one_timer_not_one_per_chunk() -> None:
    a = Upstream("a")
    engine = Engine(a)
    a.put(chunk("w0 "))
    await engine.run.start()
    reading = asyncio.create_task(engine.read_all())
    for n in range(1, 40):
        await a.drained()  # the engine took the last one
        engine.clock.advance(0.1)
        a.put(chunk(f"w{n} "))
    a.put(chunk(finish="stop"), None)
    body = await reading
    assert text_of(body) == "".join(f"w{n} " for n in range(40))
    assert len(engine.clock.handles) <= 1 and engine.clock.pending() == []


async def test_waiting_for_the_usage_chunk_ends_cleanly_at_idle() -> None:
    a = Upstream("a")
    engine = Engine(a)
    engine.run.include_usage = True
    a.put(chunk("Done."), chunk(finish="stop"))
    await engine.run.start()
    reading = asyncio.create_task(engine.read_all())
    async with asyncio.timeout(WAIT):
        await engine.clock.armed.wait()
    engine.clock.advance(TIMEOUTS.idle)
    body = await reading
    assert text_of(body) == "Done." and body.endswith(b"[DONE]\n\n")
    assert [r.outcome for r in engine.run.plan.history] == ["ok"]


# -- journal deltas: one per send ---------------------------------------------------------


async def test_chunks_read_together_are_one_send_and_one_journal_delta() -> None:
    a = Upstream("a", batches=True)
    engine = Engine(a)
    a.put(chunk("Once "))
    await engine.run.start()
    a.put(chunk("upon "), chunk("a "), chunk("time"), chunk(finish="stop"), None)
    connection = Connection()
    await asyncio.wait_for(stream_response(connection.send, [], engine.run), WAIT)
    assert engine.journal.deltas == ["Once ", "upon a time"]
    assert connection.text() == "Once upon a time"
    assert len(connection.bodies) == 3  # "Once ", the rest read at once, [DONE]
    [(kind, fields)] = engine.journal.endings
    assert kind == "completed"
    assert fields["response"]["choices"][0]["message"]["content"] == "Once upon a time"


async def test_a_client_leaving_during_a_coalesced_send_received_none_of_it() -> None:
    a = Upstream("a", batches=True)
    engine = Engine(a)
    connection = Connection(hang_at=1)  # the second send never drains
    a.put(chunk("Once "))
    await engine.run.start()
    a.put(chunk("upon "), chunk("a "), chunk("time"))
    task = asyncio.create_task(
        stream_response(connection.send, [], engine.run, receive=connection.receive)
    )
    async with asyncio.timeout(WAIT):
        await connection.hanging.wait()
    connection.gone.set()
    async with asyncio.timeout(WAIT):
        await task
    assert engine.journal.deltas == ["Once ", "upon a time"], "journaled before the send"
    assert engine.journal.endings[0][1]["sent"] == "Once ", "the client had only this"
    assert a.closed.is_set()


# -- F15: a prefill refusal is a verdict; the registry remembers it -------------------------


def refusal() -> UpstreamStatus:
    return UpstreamStatus("prefill not supported", status=400, kind="invalid_request")


async def continued(engine: Engine, a: Upstream, b: Upstream) -> str:
    a.put(chunk("Once "), chunk("upon "))
    await engine.run.start()
    b.put(chunk("upon a time", id="x"), chunk(finish="stop", id="x"), None)
    reading = asyncio.create_task(engine.read_all())
    await a.drained()
    a.put(None)  # cut mid-answer (F09)
    return text_of(await reading)


@pytest.fixture
def registry() -> HealthRegistry:
    return HealthRegistry(BreakerConfig())


async def test_a_refused_prefill_is_asked_again_with_an_instruction_and_remembered(
    registry: HealthRegistry,
) -> None:
    gate = RegistryGate(registry, PrometheusMetrics())
    a, b = Upstream("a"), Upstream("b")
    b.prefill = True
    b.refuse = [refusal()]
    engine = Engine(a, b, gate=gate)
    assert await continued(engine, a, b) == "Once upon a time"
    first, second = (call.body["messages"][-1] for call in b.calls)
    assert first == {"role": "assistant", "content": "Once upon"}, "a prefill (trimmed)"
    assert second == {"role": "user", "content": INSTRUCTION}
    outcomes = [r.outcome for r in engine.run.plan.history]
    assert outcomes == ["stream_broken", "prefill_rejected", "ok"]
    assert engine.clock.slept == [], "asked again at once"
    assert registry.refuses_prefill("b/m") and not registry.refuses_prefill("a/m")
    assert registry.get("b/m").breaker.state(engine.clock.now) == "closed"

    # the next stream continues on b with an instruction straight away
    a2, b2 = Upstream("a"), Upstream("b")
    b2.prefill = True
    later = Engine(a2, b2, gate=gate, clock=engine.clock)
    assert await continued(later, a2, b2) == "Once upon a time"
    assert [call.body["messages"][-1]["role"] for call in b2.calls] == ["user"]


async def test_without_a_registry_the_refusal_is_remembered_for_the_request() -> None:
    a, b = Upstream("a"), Upstream("b")
    b.prefill = True
    b.refuse = [refusal(), UpstreamStatus("busy", status=500, kind="server_error")]
    engine = Engine(a, b)  # OpenGate: remembers nothing across requests
    assert await continued(engine, a, b) == "Once upon a time"
    roles = [call.body["messages"][-1]["role"] for call in b.calls]
    assert roles == ["assistant", "user", "user"], "never a prefill again in this request"
    assert len(engine.clock.slept) == 1, "the 500 was retried after a backoff"


async def test_a_400_to_an_instruction_is_final_and_ends_the_stream_with_an_error() -> None:
    a, b = Upstream("a"), Upstream("b")
    b.refuse = [refusal()]  # b takes no prefill: this 400 is about the request itself
    engine = Engine(a, b)
    a.put(chunk("Once "))
    await engine.run.start()
    reading = asyncio.create_task(engine.read_all())
    await a.drained()
    a.put(None)
    body = await reading
    assert b'"error"' in body and not body.endswith(b"[DONE]\n\n")
    assert [r.outcome for r in engine.run.plan.history] == ["stream_broken", "invalid_request"]
    assert engine.metrics.continuations == ["failed"]


def test_the_engine_does_not_import_the_router() -> None:
    import standby.routing.streams as streams

    source = streams.__loader__.get_source(streams.__name__)  # type: ignore[union-attr]
    assert source is not None and "routing.router" not in source
