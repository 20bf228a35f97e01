"""Adapter for Google's Gemini API (``generateContent`` and ``streamGenerateContent``).

URLs are ``{base_url}/models/{model}:generateContent`` and
``{base_url}/models/{model}:streamGenerateContent?alt=sse`` with a base URL such as
``https://generativelanguage.googleapis.com/v1beta``; the key goes in ``x-goog-api-key``.

Translates at its edge: the OpenAI-shaped call → canonical → Gemini's request
(``standby.translate.gemini``); Gemini's answer and stream events → canonical → OpenAI's
shape (``standby.translate.gemini_stream``), so the attempt loop, breakers and mid-stream
continuation work as for any other target.  ``n`` > 1 asks for that many candidates,
each one a choice.  Prefill is off by default: Gemini is asked to continue a broken
stream with an explicit instruction.

Errors: Gemini's ``{"error": {"code", "message", "status"}}`` replies go through the
shared classifier (429 ``RESOURCE_EXHAUSTED`` → rate limited, 503 ``UNAVAILABLE`` →
unavailable, 403 ``PERMISSION_DENIED`` and a 400 about the API key → auth, a 400 about
the token limit → context length).  A prompt Gemini blocks (``promptFeedback`` with a
``blockReason``, no candidates) is a final content-policy error, never retried (F14).
Gemini ends a stream without ``[DONE]``; the finish delta marks it complete (F12).
Embeddings are not supported: route them to an OpenAI-shaped target.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import orjson

from standby.canonical import Call, Reply
from standby.errors import MalformedReply, UpstreamKind, UpstreamStatus
from standby.plan.model import ProviderConfig
from standby.providers.http import HTTPProvider, Translator
from standby.translate.gemini import request_to_gemini
from standby.translate.gemini_stream import StreamDecoder, blocked_reason, response_from_gemini
from standby.translate.openai import delta_to_openai, request_from_openai, response_to_openai


class GeminiProvider(HTTPProvider):
    """One Gemini API account."""

    default_prefill = False

    def __init__(self, name: str, config: ProviderConfig) -> None:
        headers = {"x-goog-api-key": config.api_key} if config.api_key else {}
        super().__init__(name, config, headers)
        self._base = config.base_url

    def _url(self, call: Call) -> str:
        model = quote(str(call.body.get("model") or "").removeprefix("models/"), safe="-._~")
        if call.stream:
            return f"{self._base}/models/{model}:streamGenerateContent?alt=sse"
        return f"{self._base}/models/{model}:generateContent"

    def request(self, call: Call) -> tuple[str, bytes]:
        if call.endpoint != "chat":
            raise MalformedReply(
                f"{self.name}: embeddings are not supported for Gemini targets", target=self.name
            )
        canonical = request_from_openai(call.body)
        return self._url(call), orjson.dumps(request_to_gemini(canonical))

    def blocked(self, reason: str) -> UpstreamStatus:
        """The final error for a prompt Gemini refused, in OpenAI's error shape."""
        message = (
            f"The prompt was blocked by the provider's safety system (Gemini blockReason {reason})."
        )
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": "messages",
                "code": "content_policy_violation",
            }
        }
        return UpstreamStatus(
            f"{self.name} answered 400: {message}",
            status=400,
            kind=UpstreamKind.CONTENT_POLICY,
            body=body,
            target=self.name,
        )

    def reply(self, call: Call, raw: bytes, data: dict[str, Any]) -> Reply:
        reason = blocked_reason(data)
        if reason is not None:
            raise self.blocked(reason)
        candidates = data.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            raise MalformedReply(f"{self.name}: reply has no candidates", target=self.name)
        fallback_id, model = f"chatcmpl-{uuid.uuid4().hex}", str(call.body.get("model") or "")
        responses = [
            response_from_gemini(data, id=fallback_id, model=model, candidate=index)
            for index in range(len(candidates))
        ]
        openai = response_to_openai(responses[0])
        openai["choices"] = [
            {**response_to_openai(r)["choices"][0], "index": index}
            for index, r in enumerate(responses)
        ]
        openai["created"] = int(time.time())
        return Reply(raw=orjson.dumps(openai), data=openai)

    def translator(self, call: Call) -> Translator:
        decoder = StreamDecoder(
            id=f"chatcmpl-{uuid.uuid4().hex}", model=str(call.body.get("model") or "")
        )
        created = int(time.time())
        options = call.body.get("stream_options")
        usage_wanted = isinstance(options, dict) and bool(options.get("include_usage"))

        def translate(event: dict[str, Any]) -> list[tuple[bytes, dict[str, Any]]]:
            reason = blocked_reason(event)
            if reason is not None:
                raise self.blocked(reason)
            out = []
            for index, delta in decoder.feed(event):
                if delta.usage is not None and not usage_wanted:
                    continue
                chunk = delta_to_openai(delta, id=decoder.id, model=decoder.model, created=created)
                if index and chunk["choices"]:
                    chunk["choices"][0]["index"] = index
                out.append((orjson.dumps(chunk), chunk))
            return out

        return translate
