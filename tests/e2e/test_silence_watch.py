"""A streamed n=2 request that breaks mid-answer (it cannot be continued) frees the
silence-watch ticket of the target picked to continue it, so that healthy target keeps
serving later requests. (Found in review: the ticket once leaked, and after three leaks
the target was skipped as silent forever.)"""

import asyncio

import aiohttp
import openai

from standby.sim import Fault, SimProvider
from standby.testing import running_gateway

MSG = [{"role": "user", "content": "hi"}]


def plan(a, b, c):
    def prov(s):
        return {"kind": "openai-compatible", "base_url": s.base_url, "api_key": "sk-x-secret"}

    return {
        "providers": {"a": prov(a), "b": prov(b), "c": prov(c)},
        "timeouts": {"connect": "1s", "first_token": "1s", "idle": "1s", "total": "20s"},
        "retry": {"backoff": "10ms", "max_backoff": "50ms"},
        "routes": {"main": {"targets": ["a/m", "b/m"]}, "bfirst": {"targets": ["b/m", "c/m"]}},
    }


async def test_an_abandoned_n2_continuation_frees_its_silence_ticket():
    async with asyncio.timeout(30):
        async with (
            SimProvider("a") as a,
            SimProvider("b") as b,
            SimProvider("c") as c,
            running_gateway(plan(a, b, c), data_dir=None) as gw,
        ):
            client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
            # b answers once: its silence watch learns how long a first byte takes
            r = await client.chat.completions.with_raw_response.create(model="bfirst", messages=MSG)
            assert r.headers["x-standby-provider"] == "b"
            a.set_fault(Fault("cut_stream", after=3))
            for _ in range(3):
                stream = await client.chat.completions.create(
                    model="main", messages=MSG, n=2, stream=True
                )
                try:
                    async for _chunk in stream:
                        pass
                except openai.APIError:
                    pass  # the expected error event (an n=2 stream cannot be continued)
            a.clear()
            await asyncio.sleep(1.0)
            async with aiohttp.ClientSession() as s:
                async with s.get(gw.root_url + "/standby/health") as resp:
                    health = await resp.json()
            served = []
            for _ in range(3):
                r = await client.chat.completions.with_raw_response.create(
                    model="bfirst", messages=MSG
                )
                served.append(r.headers["x-standby-provider"])
            print(
                "bfirst served by:",
                served,
                "b requests seen:",
                b.stats().get("requests", b.stats()),
            )
            assert health["targets"]["b/m"]["waiting"] == 0, "tickets left waiting on b/m"
            assert served == ["b", "b", "b"], "healthy b/m is skipped: stuck 'silent'"
