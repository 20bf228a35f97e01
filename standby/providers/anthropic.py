"""Adapter for Anthropic's Messages API (``POST {base_url}/messages``).

Translates at its edge: the OpenAI-shaped call → canonical → Claude's request (top-level
``system``, content blocks, ``max_tokens`` from the plan when the caller gave none);
Claude's reply and stream events → canonical → OpenAI's shape, so the attempt loop,
breakers and mid-stream continuation work as for any other target.  Claude continues a
trailing assistant message natively, so prefill is on by default; it refuses a prefill
ending in whitespace, so that is trimmed off and the continuation's leading whitespace
(which the caller already has) is dropped.  Errors (``overloaded_error`` 529,
``rate_limit_error`` 429, …) map through the shared status classifier; an ``error``
event mid-stream is a broken stream.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson

from standby.canonical import Call, Reply
from standby.canonical.chat import TextPart
from standby.errors import MalformedReply, StreamBroken
from standby.plan.model import ProviderConfig
from standby.providers.http import HTTPProvider, Translator
from standby.translate.anthropic import (
    prefill_trimmed,
    request_to_anthropic,
    response_from_anthropic,
)
from standby.translate.anthropic_stream import EventDecoder, StreamError
from standby.translate.openai import delta_to_openai, request_from_openai, response_to_openai

VERSION = "2023-06-01"


class AnthropicProvider(HTTPProvider):
    """One Anthropic account (or anything speaking the Messages API)."""

    default_prefill = True

    def __init__(self, name: str, config: ProviderConfig) -> None:
        headers = {"anthropic-version": config.api_version or VERSION}
        if config.api_key:
            headers["x-api-key"] = config.api_key
        super().__init__(name, config, headers)
        self._url = config.base_url + "/messages"
        self._max_tokens = config.default_max_tokens

    def request(self, call: Call) -> tuple[str, bytes]:
        if call.endpoint != "chat":
            raise MalformedReply(
                f"{self.name}: Anthropic has no embeddings endpoint", target=self.name
            )
        canonical = request_from_openai(call.body)
        body = request_to_anthropic(canonical, default_max_tokens=self._max_tokens)
        return self._url, orjson.dumps(body)

    def reply(self, call: Call, raw: bytes, data: dict[str, Any]) -> Reply:
        if data.get("type") != "message":
            raise MalformedReply(f"{self.name}: reply is not a message", target=self.name)
        response = response_from_anthropic(data)
        if _trimmed(call):
            message = response.message
            response = dataclasses.replace(
                response,
                message=dataclasses.replace(
                    message, parts=(TextPart(message.text.lstrip()),) if message.text else ()
                ),
            )
        openai = response_to_openai(response)
        openai["created"] = int(time.time())
        return Reply(raw=orjson.dumps(openai), data=openai)

    def translator(self, call: Call) -> Translator:
        decoder = EventDecoder()
        created = int(time.time())
        target = self.name
        options = call.body.get("stream_options")
        usage_wanted = isinstance(options, dict) and bool(options.get("include_usage"))
        lstrip = _trimmed(call)  # until the first visible character of the continuation

        def translate(event: dict[str, Any]) -> list[tuple[bytes, dict[str, Any]]]:
            nonlocal lstrip
            try:
                deltas = decoder.feed(event)
            except StreamError as exc:
                raise StreamBroken(f"{target}: {exc}", target=target) from exc
            out = []
            for delta in deltas:
                if delta.usage is not None and not usage_wanted:
                    continue
                if lstrip and delta.text:
                    delta = dataclasses.replace(delta, text=delta.text.lstrip())
                    lstrip = not delta.text
                    if not delta.text:
                        continue
                chunk = delta_to_openai(delta, id=decoder.id, model=decoder.model, created=created)
                out.append((orjson.dumps(chunk), chunk))
            return out

        return translate


def _trimmed(call: Call) -> bool:
    """Whether this call's prefill lost trailing whitespace on the way to Claude."""
    messages = call.body.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    return prefill_trimmed(request_from_openai({"messages": messages[-1:]}))
