"""A provider's error body is read whole even when it arrives in several packets, so a
context-length 400 split across two writes still fails over to the larger model.
(Found in review: only the first buffered bytes were once read, and the 400 reached the
caller as a final invalid_request.)"""

import asyncio

import openai
import orjson
from aiohttp import web

from standby.sim import SimProvider
from standby.testing import running_gateway

MSG = [{"role": "user", "content": "hi"}]
BODY = orjson.dumps(
    {
        "error": {
            "message": "This model's maximum context length is 8192 tokens. "
            "However, your messages resulted in 9000 tokens." + " " * 2000,
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
)


async def split_400(request: web.Request) -> web.StreamResponse:
    await request.read()
    resp = web.StreamResponse(status=400, headers={"Content-Type": "application/json"})
    resp.content_length = len(BODY)
    await resp.prepare(request)
    await resp.write(BODY[:40])
    await asyncio.sleep(0.05)
    await resp.write(BODY[40:])
    await resp.write_eof()
    return resp


async def test_an_error_body_split_across_packets_is_read_whole():
    async with asyncio.timeout(30):
        app = web.Application()
        app.router.add_post("/v1/chat/completions", split_400)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with SimProvider("big") as big:
                plan = {
                    "providers": {
                        "small": {
                            "kind": "openai-compatible",
                            "base_url": f"http://127.0.0.1:{port}/v1",
                            "api_key": "sk-x-secret",
                        },
                        "big": {
                            "kind": "openai-compatible",
                            "base_url": big.base_url,
                            "api_key": "sk-y",
                        },
                    },
                    "timeouts": {
                        "connect": "1s",
                        "first_token": "2s",
                        "idle": "2s",
                        "total": "10s",
                    },
                    "routes": {"m": {"targets": ["small/m-8k", "big/m-128k"]}},
                }
                async with running_gateway(plan, data_dir=None) as gw:
                    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
                    r = await client.chat.completions.with_raw_response.create(
                        model="m", messages=MSG
                    )
                    # the split 400 was read whole: context length, so the larger model
                    assert r.headers["x-standby-provider"] == "big"
        finally:
            await runner.cleanup()
