"""A body that OpenAI's shape tolerates but a vendor's translation cannot take (``stop: 5``
aimed at an Anthropic or Gemini target) is an OpenAI-shaped JSON 400, never a plain-text
500. (Found in review: the translation's TypeError once escaped the attempt loop.)"""

import asyncio

import aiohttp
import pytest

from standby.sim import SimProvider
from standby.testing import running_gateway


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("extra", [{"stop": 5}])
async def test_a_body_a_vendor_cannot_take_is_a_json_400(kind, stream, extra):
    async with asyncio.timeout(20):
        async with SimProvider("s") as s:
            base = s.root_url + ("/v1" if kind == "anthropic" else "/v1beta")
            plan = {
                "providers": {"x": {"kind": kind, "base_url": base, "api_key": "sk-x-secret"}},
                "routes": {"m": {"targets": ["x/m"]}},
            }
            async with running_gateway(plan, data_dir=None) as gw, aiohttp.ClientSession() as c:
                body = {
                    "model": "m",
                    "messages": [{"role": "user", "content": "hi"}],
                    "stream": stream,
                    **extra,
                }
                async with c.post(gw.base_url + "/chat/completions", json=body) as r:
                    text = await r.text()
                    print(
                        kind,
                        stream,
                        extra,
                        "->",
                        r.status,
                        r.headers.get("content-type"),
                        text[:120],
                    )
                    assert r.status == 400 and "application/json" in r.headers.get(
                        "content-type", ""
                    )
