"""The official openai SDK against a real gateway in front of two simulated providers."""

from __future__ import annotations

import openai

from standby.sim import Fault, SimProvider
from standby.testing import running_gateway
from tests.conftest import two_target_plan


async def test_plain_and_streamed_answers(primary: SimProvider, backup: SimProvider) -> None:
    async with running_gateway(two_target_plan(primary, backup)) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        reply = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.headers["x-standby-provider"] == "primary"
        assert reply.parse().choices[0].message.content == primary.expected_text()
        primary.set_fault(Fault("cut_stream", after=3))
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        ids, text = set(), ""
        async for chunk in stream:
            ids.add(chunk.id)
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        assert text == primary.expected_text()
        assert len(ids) == 1
        await client.close()
