"""Standby's own limits in the HTTP adapters: a full pool and a full file table are
``LocalLimit`` (never the provider's failure), and no attempt ever keeps a slot."""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import socket
from collections.abc import AsyncIterator

import pytest

from standby.canonical import Call, Deadlines
from standby.errors import LocalLimit, MalformedReply, UpstreamStatus
from standby.plan.model import ProviderConfig
from standby.providers.gemini import GeminiProvider
from standby.providers.openai import OpenAIProvider
from standby.sim import Fault, SimProvider

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
PLAIN = Call(endpoint="chat", body=BODY)
STREAM = Call(endpoint="chat", body={**BODY, "stream": True}, stream=True)
# the slot wait is min(1 s, first_token / 2): 0.1 s here
SHORT = Deadlines(connect=2.0, first_token=0.2, idle=5.0)
LONG = Deadlines(connect=2.0, first_token=5.0, idle=5.0)


@pytest.fixture
async def sim() -> AsyncIterator[SimProvider]:
    async with SimProvider("primary", words=4, chunk_delay=0.1) as running:
        yield running


@pytest.fixture
async def provider(sim: SimProvider) -> AsyncIterator[OpenAIProvider]:
    config = ProviderConfig(base_url=sim.base_url, api_key="sk-test-key", max_connections=1)
    adapter = OpenAIProvider("primary", config)
    yield adapter
    await adapter.aclose()


async def read_all(provider: OpenAIProvider, deadlines: Deadlines) -> str:
    stream = await provider.open_stream(STREAM, deadlines)
    text = ""
    try:
        while (chunk := await stream.next()) is not None:
            text += chunk.content or ""
    finally:
        await stream.aclose()
    return text


async def test_an_open_stream_holds_its_slot_until_closed(
    sim: SimProvider, provider: OpenAIProvider
) -> None:
    stream = await provider.open_stream(STREAM, LONG)
    assert provider.slots.busy == 1
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(LocalLimit, match="no free connection in Standby's own pool"):
        await provider.open_stream(STREAM, SHORT)
    waited = loop.time() - started
    assert 0.08 < waited < 0.19, "the slot wait, well before the first-token deadline"
    await stream.aclose()
    await stream.aclose()  # twice is harmless: the slot is given back once
    assert provider.slots.busy == 0
    assert await read_all(provider, LONG) == sim.expected_text()
    assert provider.slots.busy == 0


async def test_a_request_waits_for_a_slot_that_frees_up_in_time(
    sim: SimProvider, provider: OpenAIProvider
) -> None:
    first = asyncio.create_task(read_all(provider, LONG))  # ~0.4 s of chunks
    await asyncio.sleep(0.05)
    second = await read_all(provider, LONG)  # waits up to 1 s for the slot
    assert second == (await first) == sim.expected_text()
    assert provider.slots.busy == 0


async def test_the_deadlines_start_after_the_slot_wait(
    sim: SimProvider, provider: OpenAIProvider
) -> None:
    sim.set_fault(Fault("latency", delay=0.15, times=2))
    deadlines = Deadlines(connect=2.0, first_token=2.5, idle=5.0)  # slot wait: 1 s
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = asyncio.create_task(provider.send(PLAIN, deadlines))
    await asyncio.sleep(0.01)
    second = await provider.send(PLAIN, deadlines)  # waited for `first`, then its own 0.15 s
    await first
    assert second.data["choices"]
    assert loop.time() - started >= 0.3


async def test_a_held_non_stream_request_makes_the_next_one_a_local_limit(
    sim: SimProvider, provider: OpenAIProvider
) -> None:
    sim.set_fault(Fault("silent", times=1))
    held = asyncio.create_task(provider.send(PLAIN, LONG))
    async with asyncio.timeout(2):
        await sim.holds.wait(1)
    with pytest.raises(LocalLimit):
        await provider.send(PLAIN, SHORT)
    assert provider.slots.busy == 1
    sim.release()
    assert (await held).data["choices"]
    assert provider.slots.busy == 0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_failed_attempt_gives_its_slot_back(
    sim: SimProvider, provider: OpenAIProvider, stream: bool
) -> None:
    sim.set_fault(Fault("error", status=503))
    for _ in range(3):  # with one slot, a leak would show as LocalLimit on the next try
        with pytest.raises(UpstreamStatus):
            if stream:
                await provider.open_stream(STREAM, LONG)
            else:
                await provider.send(PLAIN, LONG)
    assert provider.slots.busy == 0


async def test_a_cancelled_attempt_gives_its_slot_back(
    sim: SimProvider, provider: OpenAIProvider
) -> None:
    sim.set_fault(Fault("silent", times=1))
    attempt = asyncio.create_task(provider.open_stream(STREAM, LONG))
    async with asyncio.timeout(2):
        await sim.holds.wait(1)
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert provider.slots.busy == 0
    sim.release()


async def test_an_untranslatable_request_takes_no_slot(sim: SimProvider) -> None:
    config = ProviderConfig(kind="gemini", base_url=sim.base_url, max_connections=1)
    gemini = GeminiProvider("g", config)
    try:
        with pytest.raises(MalformedReply, match="embeddings"):
            await gemini.send(Call(endpoint="embeddings", body={"model": "m", "input": "x"}), LONG)
        assert gemini.slots.busy == 0
    finally:
        await gemini.aclose()


async def test_no_file_descriptor_left_is_a_local_limit(
    sim: SimProvider, provider: OpenAIProvider
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[socket.socket] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
        with pytest.raises(OSError):  # fill the file table up to the (lowered) limit
            while len(held) < 64:
                held.append(socket.socket())
        with pytest.raises(LocalLimit, match="too many open files in this process") as caught:
            await provider.send(PLAIN, LONG)
    finally:
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    cause = caught.value.__cause__
    assert isinstance(cause, OSError) and cause.errno == errno.EMFILE
    assert provider.slots.busy == 0
    assert (await provider.send(PLAIN, LONG)).data["choices"]  # fine again once fds are free
