"""The drills' injector (pure: injected clock and draws): which attempts get a fault,
for how long, on which target, and what each fault does to a real provider's answer."""

from __future__ import annotations

import random

import pytest

from standby.canonical import Call, Deadlines
from standby.drills.faults import Faulty, Injection, Injector
from standby.errors import DeadlineExceeded, StreamBroken, UpstreamStatus
from standby.plan.load import parse_plan
from standby.providers.registry import build_provider
from standby.sim import SimProvider


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_injection_covers_its_target_for_its_time_and_share() -> None:
    clock = Clock()
    injector = Injector(clock=clock, rng=random.Random(7))
    injector.add(Injection("d1", "openai/gpt-4o-mini", "outage", 1.0, until=110.0))
    assert injector.fault_for("openai", "gpt-4o-mini") is not None
    assert injector.fault_for("openai", "gpt-4o") is None  # another model of it
    assert injector.fault_for("anthropic", "gpt-4o-mini") is None
    assert injector.drilling("openai/gpt-4o-mini") == "d1"
    clock.now = 110.0  # over: forgotten
    assert injector.fault_for("openai", "gpt-4o-mini") is None
    assert injector.injections == {} and injector.drilling("openai/gpt-4o-mini") is None


def test_a_share_faults_about_that_share_and_a_provider_covers_its_models() -> None:
    injector = Injector(clock=Clock(), rng=random.Random(1))
    injector.add(Injection("d2", "openai", "429", 0.25, until=1e9))
    hits = sum(injector.fault_for("openai", f"m{n % 3}") is not None for n in range(4000))
    assert 900 < hits < 1100
    assert injector.injected["d2"] == hits


MODEL = "gpt-4o-mini"
DEADLINES = Deadlines(connect=1.0, first_token=0.05, idle=0.05)


@pytest.fixture
async def faulty(primary: SimProvider) -> Faulty:
    plan = parse_plan(
        f"providers:\n  primary: {{kind: openai-compatible, base_url: '{primary.base_url}', "
        f"api_key: k}}\nroutes:\n  {MODEL}: {{targets: ['primary/{MODEL}']}}\n",
        file="p.yaml",
        env={},
    )
    return Faulty(build_provider("primary", plan.providers["primary"]), Injector())


def call(stream: bool) -> Call:
    return Call(
        endpoint="chat",
        body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
        stream=stream,
    )


@pytest.mark.parametrize(
    ("fault", "stream", "raised"),
    [
        ("outage", False, UpstreamStatus),
        ("429", True, UpstreamStatus),
        ("slow", False, DeadlineExceeded),
        ("slow", True, DeadlineExceeded),
        ("cut", True, StreamBroken),
        ("stall", True, DeadlineExceeded),
    ],
)
async def test_each_fault_on_a_real_provider(
    faulty: Faulty, primary: SimProvider, fault: str, stream: bool, raised: type[Exception]
) -> None:
    faulty.injector.add(Injection("d", f"primary/{MODEL}", fault, 1.0, until=1e12))
    before = len(primary.requests)
    try:
        with pytest.raises(raised):
            if not stream:
                await faulty.send(call(False), DEADLINES)
            else:
                chunks = await faulty.open_stream(call(True), DEADLINES)
                try:
                    while await chunks.next() is not None:
                        pass
                finally:
                    await chunks.aclose()
        reached = len(primary.requests) - before
        # outage, 429 and slow never reach the provider; a cut or stall is of a real stream
        assert reached == (1 if fault in ("cut", "stall") else 0)
    finally:
        await faulty.aclose()


async def test_no_drill_no_fault(faulty: Faulty, primary: SimProvider) -> None:
    try:
        reply = await faulty.send(call(False), Deadlines(connect=2.0, first_token=5.0, idle=5.0))
        assert reply.status == 200 and primary.expected_text() in reply.raw.decode()
    finally:
        await faulty.aclose()
