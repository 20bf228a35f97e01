"""Adapter for OpenAI and every OpenAI-compatible API (Groq, Mistral, vLLM, Ollama, …),
and Azure OpenAI (deployment URLs, ``api-version``, ``api-key`` header).

The caller's body is forwarded with only ``model`` re-aimed and replies pass through as
the bytes received: OpenAI's shape is Standby's own.
"""

from __future__ import annotations

from typing import Any

import orjson

from standby.canonical import Call, Reply
from standby.errors import MalformedReply
from standby.plan.model import ProviderConfig
from standby.providers.http import HTTPProvider

_PATHS = {"chat": "/chat/completions", "embeddings": "/embeddings"}


class OpenAIProvider(HTTPProvider):
    """One OpenAI-shaped upstream account."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        super().__init__(name, config, headers)
        self._urls = {endpoint: config.base_url + path for endpoint, path in _PATHS.items()}

    def request(self, call: Call) -> tuple[str, bytes]:
        return self._urls[call.endpoint], orjson.dumps(call.body)

    def reply(self, call: Call, raw: bytes, data: dict[str, Any]) -> Reply:
        expected = "choices" if call.endpoint == "chat" else "data"
        if not isinstance(data.get(expected), list):
            raise MalformedReply(f"{self.name}: reply has no '{expected}'", target=self.name)
        return Reply(raw=raw, data=data)


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI: the target's model names the deployment."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        HTTPProvider.__init__(
            self, name, config, {"api-key": config.api_key} if config.api_key else {}
        )
        self._base = config.base_url.removesuffix("/openai")
        self._version = config.api_version or "2024-10-21"

    def request(self, call: Call) -> tuple[str, bytes]:
        deployment = str(call.body.get("model") or "")
        path = _PATHS[call.endpoint]
        url = f"{self._base}/openai/deployments/{deployment}{path}?api-version={self._version}"
        return url, orjson.dumps(call.body)
