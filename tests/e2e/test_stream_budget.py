"""``timeouts.total`` bounds attempts and failovers, not a healthy answer: a stream that
keeps producing tokens past the total budget is delivered whole. (Found in review: the
budget once capped the idle deadline, cutting healthy long answers.)"""

import asyncio

import openai

from standby.sim import SimProvider
from standby.testing import running_gateway

MSG = [{"role": "user", "content": "hi"}]


def plan(p, b, **t):
    def prov(s):
        return {"kind": "openai-compatible", "base_url": s.base_url, "api_key": "sk-x-secret"}

    return {
        "providers": {"p": prov(p), "b": prov(b)},
        "timeouts": {"connect": "1s", "first_token": "1s", "idle": "1s", "total": "2s", **t},
        "retry": {"backoff": "10ms", "max_backoff": "50ms"},
        "routes": {"m": {"targets": ["p/m", "b/m"]}},
    }


async def test_a_healthy_stream_outlives_the_total_budget():
    async with asyncio.timeout(30):
        # 40 words, 0.1 s apart: a healthy 4 s stream, never idle for more than 0.1 s
        async with (
            SimProvider("p", words=40, chunk_delay=0.1) as p,
            SimProvider("b", words=40, chunk_delay=0.1) as b,
            running_gateway(plan(p, b), data_dir=None) as gw,
        ):
            client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
            text, error = "", None
            try:
                async for c in await client.chat.completions.create(
                    model="m", messages=MSG, stream=True
                ):
                    if c.choices and c.choices[0].delta.content:
                        text += c.choices[0].delta.content
            except openai.APIError as e:
                error = e
            print("received", len(text.split()), "words; error:", error)
            assert error is None and text == p.expected_text()
