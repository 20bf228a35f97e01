"""Azure OpenAI as a target: deployment URLs, api-version, the api-key header."""

from __future__ import annotations

import openai

from standby.sim import Fault, SimProvider
from standby.testing import running_gateway


async def test_failover_to_an_azure_deployment(primary: SimProvider, backup: SimProvider) -> None:
    root = backup.base_url.removesuffix("/v1")
    plan = {
        "providers": {
            "primary": {"base_url": primary.base_url, "api_key": "sk-primary"},
            "azure": {
                "kind": "azure",
                "base_url": root,
                "api_key": "azure-key-123",
                "api_version": "2024-10-21",
            },
        },
        "timeouts": {"connect": "1s", "first_token": "1s", "idle": "1s", "total": "10s"},
        "routes": {"gpt-4o-mini": {"targets": ["primary/gpt-4o-mini", "azure/my-deployment"]}},
    }
    primary.set_fault(Fault("error", status=503))
    async with running_gateway(plan, data_dir=None) as gw:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        reply = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.headers["x-standby-provider"] == "azure"
        assert reply.parse().choices[0].message.content == backup.expected_text()
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == backup.expected_text()
        await client.close()
    seen = backup.requests[-1]
    assert seen.path == "/openai/deployments/my-deployment/chat/completions"
    assert seen.headers["api-key"] == "azure-key-123" and "authorization" not in seen.headers
    assert seen.body["model"] == "my-deployment"
