"""What every HTTP/JSON provider adapter shares: the connection pool and its slots,
deadlines, the mapping of timeouts into ``standby.errors``, error statuses, reply checks,
and the SSE chunk reader.

Every attempt first takes one of the provider's connection slots (``slots.Slots``,
``max_connections`` of them), waiting briefly in a bounded queue if all are taken; only
then do its deadlines start.  A pool that stays full, or a process out of file
descriptors (``EMFILE``/``ENFILE`` while connecting), is ``LocalLimit``: Standby's own
limit, never the provider's failure.  The HTTP itself is ``upstream.Pool``'s, which
raises connection failures as Standby errors already; the deadlines are set here, per
phase of the attempt.

A vendor adapter subclasses ``HTTPProvider`` and says only what differs: the URL and
body of a call (``request``), how a reply becomes OpenAI's shape (``reply``), and how a
stream event does (``translator``).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from standby.canonical import Call, Chunk, Deadlines, Reply
from standby.errors import (
    DeadlineExceeded,
    InvalidRequest,
    MalformedReply,
    StreamBroken,
)
from standby.plan.model import ProviderConfig
from standby.providers.slots import Slots
from standby.providers.sse import SSEDecoder, is_done
from standby.providers.statuses import classify
from standby.providers.upstream import Pool, Response

log = logging.getLogger("standby.providers")

_ERROR_BODY_LIMIT = 256 * 1024
# One stream event's parsed JSON → the OpenAI chunks it stands for (raw bytes, dict)
Translator = Callable[[dict[str, Any]], list[tuple[bytes, dict[str, Any]]]]


class HTTPProvider(abc.ABC):
    """One upstream account over HTTP/JSON. Subclasses fill in the vendor's shapes."""

    default_prefill = False  # whether the vendor continues a trailing assistant message

    def __init__(self, name: str, config: ProviderConfig, headers: dict[str, str]) -> None:
        self.name = name
        self.prefill = self.default_prefill if config.prefill is None else config.prefill
        self._config = config
        self._headers = {"Content-Type": "application/json", **headers, **config.headers}
        self._pool = Pool(name, self._headers)
        self._slots = Slots(name, config.max_connections)
        self._secret = config.api_key.encode() if len(config.api_key) >= 8 else b""

    def __repr__(self) -> str:  # never shows the key
        return f"<{type(self).__name__} {self.name} {self._config.base_url}>"

    @property
    def slots(self) -> Slots:
        """The connection slots of this provider (how many are busy, how many wait)."""
        return self._slots

    # -- what a vendor adapter says ------------------------------------------------------
    @abc.abstractmethod
    def request(self, call: Call) -> tuple[str, bytes]:
        """The URL and JSON body of one call."""

    @abc.abstractmethod
    def reply(self, call: Call, raw: bytes, data: dict[str, Any]) -> Reply:
        """A checked 2xx reply → an OpenAI-shaped ``Reply``."""

    def translator(self, call: Call) -> Translator | None:
        """How to turn this call's stream events into OpenAI chunks (None: already are)."""
        return None

    async def aclose(self) -> None:
        self._pool.close()

    def _late(self, phase: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{self.name}: no {phase.replace('_', ' ')} in time", phase=phase, target=self.name
        )

    def _prepared(self, call: Call) -> tuple[str, bytes]:
        """The URL and body of ``call``; ``InvalidRequest`` when this vendor cannot take it."""
        try:
            return self.request(call)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # a body OpenAI's shape tolerates but this vendor's translation cannot take;
            # the caller gets what to fix, the log the translator's own words
            log.info("%s: request not translatable: %s: %s", self.name, type(exc).__name__, exc)
            raise InvalidRequest(
                f"The request cannot be sent to {self.name}: a field has a value or shape "
                "that this provider's API cannot represent (check tools, response_format "
                "and message content parts)."
            ) from exc

    async def _take_slot(self, deadlines: Deadlines) -> None:
        """One of the pool's slots, before the attempt's deadlines start; ``LocalLimit``
        when none frees up within the slot wait.

        The wait is also kept under half the attempt's first-token deadline, so a caller
        that runs its own first-token timer around ``open_stream`` (which then includes
        this wait) still hears ``LocalLimit``, not the provider's silence.
        """
        await self._slots.take(min(self._slots.wait, deadlines.first_token / 2))

    async def send(self, call: Call, deadlines: Deadlines) -> Reply:
        url, payload = self._prepared(call)
        await self._take_slot(deadlines)
        phase = "first_token"
        try:
            # one timer for both phases: moved on, not replaced, once the headers are in
            async with asyncio.timeout(deadlines.first_token) as deadline:
                resp = await self._pool.post(url, payload, connect_timeout=deadlines.connect)
                try:
                    phase = "idle"
                    deadline.reschedule(asyncio.get_running_loop().time() + deadlines.idle)
                    if resp.status >= 400:
                        await self._raise_status(resp)
                    raw = await resp.read()
                finally:
                    resp.release()
        except TimeoutError as exc:
            raise self._late(phase) from exc
        finally:
            self._slots.give()
        return self.reply(call, raw, self._parse_ok(resp, raw))

    async def open_stream(self, call: Call, deadlines: Deadlines) -> SSEChunkStream:
        url, payload = self._prepared(call)
        await self._take_slot(deadlines)
        started = asyncio.get_running_loop().time()
        try:
            try:
                async with asyncio.timeout(deadlines.first_token):
                    resp = await self._pool.post(url, payload, connect_timeout=deadlines.connect)
                    if resp.status >= 400:
                        try:
                            await self._raise_status(resp)
                        finally:
                            resp.release()
                    ctype = resp.headers.get("content-type", "")
                    if "text/event-stream" not in ctype:
                        try:
                            raw = await resp.read()
                        finally:
                            resp.release()
                        self._parse_ok(resp, raw)  # raises on an error body or HTML
                        raise MalformedReply(
                            f"{self.name}: expected an event stream, got {ctype!r}",
                            target=self.name,
                        )
            except TimeoutError as exc:
                raise self._late("first_token") from exc
        except BaseException:
            self._slots.give()
            raise
        # the stream holds the slot until it is closed
        return SSEChunkStream(
            self.name, resp, self.translator(call), started=started, release=self._slots.give
        )

    async def _raise_status(self, resp: Response) -> None:
        raw = await resp.read_up_to(_ERROR_BODY_LIMIT)
        if self._secret and self._secret in raw:  # some providers echo the key they refused
            raw = raw.replace(self._secret, b"***")
        body: dict[str, Any] | None
        try:
            parsed = orjson.loads(raw) if raw else None
            body = parsed if isinstance(parsed, dict) else None
        except orjson.JSONDecodeError:
            body = None
        raise classify(resp.status, body, resp.headers, target=self.name)

    def _parse_ok(self, resp: Response, raw: bytes) -> dict[str, Any]:
        ctype = resp.headers.get("content-type", "")
        if "html" in ctype or raw.lstrip()[:1] == b"<":
            raise MalformedReply(
                f"{self.name}: answered with an HTML page, not JSON", target=self.name
            )
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedReply(f"{self.name}: reply is not JSON", target=self.name) from exc
        if not isinstance(data, dict):
            raise MalformedReply(f"{self.name}: reply is not a JSON object", target=self.name)
        if data.get("error") or data.get("type") == "error":
            raise MalformedReply(
                f"{self.name}: HTTP {resp.status} carrying an error body", target=self.name
            )
        return data


class SSEChunkStream:
    """Chunks of one upstream SSE stream; malformed events are skipped and logged.

    Each read from the socket is decoded at once into chunks, so ``buffered`` tells
    exactly whether ``next()`` can answer without waiting on the network.  ``started``
    is the event loop's time when the attempt's deadlines started (after its slot);
    ``release`` gives the slot back, once, when the stream is closed.
    """

    __slots__ = (
        "_decoder",
        "_done",
        "_eof",
        "_error",
        "_finished",
        "_out",
        "_release",
        "_resp",
        "_translate",
        "started",
        "target",
    )

    def __init__(
        self,
        target: str,
        resp: Response,
        translate: Translator | None = None,
        *,
        started: float | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.target = target
        self.started = asyncio.get_running_loop().time() if started is None else started
        self._resp = resp
        self._release = release
        self._translate = translate
        self._out: deque[Chunk] = deque()  # decoded chunks not yet handed out
        self._decoder = SSEDecoder()
        self._eof = False
        self._done = False  # [DONE] seen
        self._error: StreamBroken | None = None  # an error event, after the chunks before it
        self._finished = False

    @property
    def buffered(self) -> bool:
        return bool(self._out) or self._done or self._error is not None

    async def next(self) -> Chunk | None:
        while True:
            if self._out:
                return self._out.popleft()
            if self._error is not None:
                raise self._error
            if self._done:
                return None
            if self._eof:
                if self._finished:
                    return None  # ended without [DONE] but complete: finalise (F12)
                raise StreamBroken(
                    f"{self.target}: stream ended before the answer finished", target=self.target
                )
            data_in = await self._resp.read_some()  # StreamBroken if the stream is cut
            if not data_in:
                self._eof = True
                self._absorb(self._decoder.flush())
            else:
                self._absorb(self._decoder.feed(data_in))

    def _absorb(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            if self._done or self._error is not None:
                return
            if is_done(payload):
                self._done = True
                return
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                log.warning(
                    "skipped a malformed stream event from %s (%d bytes)", self.target, len(payload)
                )
                continue
            if not isinstance(data, dict):
                continue
            if data.get("error"):
                self._error = StreamBroken(
                    f"{self.target}: error event in the stream", target=self.target
                )
                return
            if self._translate is None:  # the fast path: already OpenAI's shape
                chunk = Chunk.parse(payload, data)
                self._finished = self._finished or bool(chunk.finish_reason)
                self._out.append(chunk)
                continue
            try:
                translated = self._translate(data)
            except StreamBroken as exc:
                self._error = exc
                return
            for raw, item in translated:
                chunk = Chunk.parse(raw, item)
                self._finished = self._finished or bool(chunk.finish_reason)
                self._out.append(chunk)

    async def aclose(self) -> None:
        # release() pools the connection only when the body was read to its end
        self._resp.release()
        release, self._release = self._release, None
        if release is not None:
            release()
