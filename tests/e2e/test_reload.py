"""SIGHUP re-reads the plan of a real ``standby serve`` and swaps it in.

A stream in flight during the reload finishes on the plan it started with; a plan with
errors is refused (logged with file, line and key) and the running one keeps serving.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from standby.sim import SimProvider
from tests.e2e.served import ServedGateway, served

RELOAD_WAIT = 15.0


def plan_text(sim: SimProvider, routes: list[str], *, bad: bool = False) -> str:
    lines = [
        "providers:",
        f"  sim: {{kind: openai-compatible, base_url: '{sim.base_url}', api_key: sk-up}}",
        "timeouts: {connect: 1s, first_token: 5s, idle: 5s, total: 30s}",
        "routes:",
        *(f"  {name}: {{targets: [sim/gpt-4o-mini]}}" for name in routes),
    ]
    if bad:
        lines.append("  broken: {targets: [nowhere/model]}")  # an unknown provider
    return "\n".join(lines) + "\n"


@pytest.fixture
async def slow_sim() -> AsyncIterator[SimProvider]:
    async with SimProvider("sim", words=40, chunk_delay=0.05) as sim:
        yield sim


async def models(gw: ServedGateway) -> set[str]:
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    try:
        return {model.id async for model in client.models.list()}
    finally:
        await client.close()


async def wait_for_log(gw: ServedGateway, words: str) -> str:
    async with asyncio.timeout(RELOAD_WAIT):
        while True:
            for line in gw.stderr:
                if words in line:
                    return line
            await asyncio.sleep(0.05)  # the process logs asynchronously: poll, bounded


async def test_sighup_swaps_the_plan_without_dropping_a_stream(
    slow_sim: SimProvider, tmp_path: Path
) -> None:
    async with served(plan_text(slow_sim, ["first"]), tmp_path) as gw:
        assert await models(gw) == {"first"}
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        stream = await client.chat.completions.create(
            model="first", messages=[{"role": "user", "content": "long"}], stream=True
        )
        text, reloaded = "", False
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if text and not reloaded:  # the stream is under way: now reload
                gw.plan_path.write_text(plan_text(slow_sim, ["second"]))
                gw.process.send_signal(signal.SIGHUP)
                reloaded = True
        assert text == slow_sim.expected_text()  # finished on the plan it started on
        await wait_for_log(gw, "plan reloaded from")
        assert await models(gw) == {"second"}
        reply = await client.chat.completions.create(
            model="second", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == slow_sim.expected_text()
        await client.close()
        assert gw.process.returncode is None


async def test_a_bad_plan_is_refused_and_the_old_one_keeps_serving(
    slow_sim: SimProvider, tmp_path: Path
) -> None:
    async with served(plan_text(slow_sim, ["first"]), tmp_path) as gw:
        gw.plan_path.write_text(plan_text(slow_sim, ["second"], bad=True))
        gw.process.send_signal(signal.SIGHUP)
        refused = await wait_for_log(gw, "plan reload refused")
        assert "plan reload refused" in refused
        joined = "\n".join(gw.stderr)
        assert "routes.broken.targets[0]" in joined and "unknown provider" in joined
        assert await models(gw) == {"first"}
        assert gw.process.returncode is None
