"""Adapter for OpenAI and every OpenAI-compatible API (Groq, Mistral, vLLM, Ollama, …).

Speaks HTTP through one pooled ``aiohttp`` session per provider, forwards the caller's
body with only ``model`` re-aimed, and maps every aiohttp/asyncio failure into the
``standby.errors`` tree right here, at the edge, raised ``from`` the original.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from standby.canonical import Call, Chunk, Deadlines, Reply
from standby.errors import (
    ConnectFailed,
    DeadlineExceeded,
    MalformedReply,
    ProviderError,
    ResetBeforeHeaders,
    StreamBroken,
)
from standby.plan.model import Provider as ProviderConfig
from standby.providers.sse import SSEDecoder, is_done
from standby.providers.statuses import classify

log = logging.getLogger("standby.providers")

_ERROR_BODY_LIMIT = 256 * 1024
_PATHS = {"chat": "/chat/completions", "embeddings": "/embeddings"}


class OpenAIProvider:
    """One OpenAI-shaped upstream account."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.prefill = config.prefill
        self._config = config
        self._urls = {endpoint: config.base_url + path for endpoint, path in _PATHS.items()}
        headers = {"Content-Type": "application/json", **config.headers}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None
        self._secret = config.api_key.encode() if len(config.api_key) >= 8 else b""

    def __repr__(self) -> str:  # never shows the key
        return f"<OpenAIProvider {self.name} {self._config.base_url}>"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._config.max_connections, keepalive_timeout=60, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, auto_decompress=True,
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @contextlib.asynccontextmanager
    async def _mapped(self, phase: str) -> AsyncIterator[None]:
        """Translate aiohttp/asyncio failures into the Standby tree."""
        target = self.name
        try:
            yield
        except ProviderError:
            raise
        except aiohttp.ConnectionTimeoutError as exc:
            raise DeadlineExceeded(f"{target}: connect timed out", phase="connect",
                                   target=target) from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(f"{target}: cannot connect ({exc.os_error})",
                                target=target) from exc
        except TimeoutError as exc:
            raise DeadlineExceeded(f"{target}: no {phase.replace('_', ' ')} in time", phase=phase,
                                   target=target) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
            raise StreamBroken(f"{target}: reply cut ({type(exc).__name__})",
                               target=target) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ResetBeforeHeaders(f"{target}: connection lost ({type(exc).__name__})",
                                     target=target) from exc

    async def _post(self, call: Call, deadlines: Deadlines) -> aiohttp.ClientResponse:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=deadlines.connect)
        return await self._client().post(self._urls[call.endpoint], data=orjson.dumps(call.body),
                                          timeout=timeout)

    async def send(self, call: Call, deadlines: Deadlines) -> Reply:
        async with self._mapped("first_token"), asyncio.timeout(deadlines.first_token):
            resp = await self._post(call, deadlines)
        try:
            async with self._mapped("idle"), asyncio.timeout(deadlines.idle):
                if resp.status >= 400:
                    await self._raise_status(resp)
                raw = await resp.read()
            return Reply(raw=raw, data=self._parse_ok(resp, raw, call), status=resp.status)
        finally:
            resp.release()

    async def open_stream(self, call: Call, deadlines: Deadlines) -> OpenAIStream:
        async with self._mapped("first_token"), asyncio.timeout(deadlines.first_token):
            resp = await self._post(call, deadlines)
            if resp.status >= 400:
                try:
                    await self._raise_status(resp)
                finally:
                    resp.release()
            ctype = resp.headers.get("Content-Type", "")
            if "text/event-stream" not in ctype:
                try:
                    raw = await resp.read()
                finally:
                    resp.release()
                self._parse_ok(resp, raw, call)  # raises on an error body or HTML
                raise MalformedReply(f"{self.name}: expected an event stream, got {ctype!r}",
                                     target=self.name)
        return OpenAIStream(self.name, resp)

    async def _raise_status(self, resp: aiohttp.ClientResponse) -> None:
        raw = await resp.content.read(_ERROR_BODY_LIMIT)
        if self._secret and self._secret in raw:  # some providers echo the key they refused
            raw = raw.replace(self._secret, b"***")
        body: dict[str, Any] | None
        try:
            parsed = orjson.loads(raw) if raw else None
            body = parsed if isinstance(parsed, dict) else None
        except orjson.JSONDecodeError:
            body = None
        raise classify(resp.status, body, resp.headers, target=self.name)

    def _parse_ok(self, resp: aiohttp.ClientResponse, raw: bytes, call: Call) -> dict[str, Any]:
        ctype = resp.headers.get("Content-Type", "")
        if "html" in ctype or raw.lstrip()[:1] == b"<":
            raise MalformedReply(f"{self.name}: answered with an HTML page, not JSON",
                                 target=self.name)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedReply(f"{self.name}: reply is not JSON", target=self.name) from exc
        if not isinstance(data, dict):
            raise MalformedReply(f"{self.name}: reply is not a JSON object", target=self.name)
        if data.get("error"):
            raise MalformedReply(f"{self.name}: HTTP {resp.status} carrying an error body",
                                 target=self.name)
        expected = "choices" if call.endpoint == "chat" else "data"
        if not isinstance(data.get(expected), list):
            raise MalformedReply(f"{self.name}: reply has no '{expected}'", target=self.name)
        return data


class OpenAIStream:
    """Chunks of one upstream SSE stream; malformed events are skipped and logged."""

    __slots__ = ("_decoder", "_eof", "_finished", "_pending", "_resp", "target")

    def __init__(self, target: str, resp: aiohttp.ClientResponse) -> None:
        self.target = target
        self._resp = resp
        self._decoder = SSEDecoder()
        self._pending: deque[bytes] = deque()
        self._eof = False
        self._finished = False

    async def next(self) -> Chunk | None:
        while True:
            while self._pending:
                payload = self._pending.popleft()
                if is_done(payload):
                    return None
                try:
                    data = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    log.warning("skipped a malformed stream event from %s (%d bytes)",
                                self.target, len(payload))
                    continue
                if not isinstance(data, dict):
                    continue
                if data.get("error"):
                    raise StreamBroken(f"{self.target}: error event in the stream",
                                       target=self.target)
                chunk = Chunk.parse(payload, data)
                if chunk.finish_reason:
                    self._finished = True
                return chunk
            if self._eof:
                if self._finished:
                    return None  # ended without [DONE] but complete: finalise (F12)
                raise StreamBroken(f"{self.target}: stream ended before the answer finished",
                                   target=self.target)
            try:
                data_in = await self._resp.content.readany()
            except (aiohttp.ClientError, OSError) as exc:
                raise StreamBroken(f"{self.target}: stream cut ({type(exc).__name__})",
                                   target=self.target) from exc
            if not data_in:
                self._eof = True
                self._pending.extend(self._decoder.flush())
            else:
                self._pending.extend(self._decoder.feed(data_in))

    async def aclose(self) -> None:
        # release() pools the connection only when the body was read to its end
        self._resp.release()
