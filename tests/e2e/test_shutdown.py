"""Stopping a real ``standby serve``: the answers in flight finish, but the stop is bounded
by ``server.drain`` — a healthy stream has no total deadline, so without it a stop could
wait for ever."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import openai
import pytest

from standby.sim import Fault, SimProvider
from tests.conftest import two_target_plan
from tests.e2e.served import served

STOP_WITHIN = 15.0  # seconds: far above a 0.5 s drain, far below the held stream's end
# how a stopped gateway exits: uvicorn, once drained, raises the signal it caught again
STOPPED = (0, -signal.SIGTERM)


def plan(primary: SimProvider, backup: SimProvider, drain: str) -> str:
    text: dict[str, Any] = two_target_plan(
        primary,
        backup,
        # the stall below is the provider pausing, not a fault: no deadline may cut it
        timeouts={"connect": "1s", "first_token": "5s", "idle": "60s", "total": "60s"},
        server={"drain": drain},
    )
    return json.dumps(text)


async def first_content(stream: openai.AsyncStream[Any]) -> str:
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            return str(chunk.choices[0].delta.content)
    raise AssertionError("the stream ended before any content")


async def test_a_stop_lets_an_answer_in_flight_finish(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> None:
    primary.set_fault(Fault("stall", after=2, delay=1.0))  # a pause mid-answer
    async with served(plan(primary, backup, "30s"), tmp_path) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = await first_content(stream)
        gw.process.terminate()  # asked to stop mid-answer
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        assert text == primary.expected_text()
        async with asyncio.timeout(STOP_WITHIN):
            assert await gw.process.wait() in STOPPED
        await client.close()


async def test_a_stop_cancels_what_outlasts_the_drain(
    primary: SimProvider, backup: SimProvider, tmp_path: Path
) -> None:
    primary.set_fault(Fault("stall", after=2))  # held until released: longer than any drain
    try:
        async with served(plan(primary, backup, "0.5s"), tmp_path) as gw:
            client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = await first_content(stream)
            gw.process.terminate()
            async with asyncio.timeout(STOP_WITHIN):
                assert await gw.process.wait() in STOPPED
            with pytest.raises(openai.APIError):  # cut: no [DONE]
                async for chunk in stream:
                    if chunk.choices:
                        text += chunk.choices[0].delta.content or ""
            assert text != primary.expected_text()
            await client.close()
    finally:
        primary.release()
