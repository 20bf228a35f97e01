"""One log line per HTTP request, and the JSON shape of every log line.

``AccessLog(app)`` wraps an ASGI app and, after each HTTP request, logs at INFO on
``standby.access``::

    - alice POST /v1/chat/completions route=gpt-4o target=openai/gpt-4o attempts=1 200 812.4ms

request id (``x-request-id`` of the response, ``-`` if none), client name (what the key
check left in ``scope["standby.client"]``), method, path, route, the target that answered,
attempts, status, and the latency to the end of the response body.  Route, target and
attempts come from the ``x-standby-*`` headers the wires put on their answers.  The same
values ride on the record as attributes (``ACCESS_FIELDS``), so ``JsonFormatter`` writes
them as keys.

With ``metrics``, every request of a named client (a client key's name) is also counted
in ``standby_client_requests_total{client, status}``, whether or not the line is logged:
the metrics then say who was affected by an outage, as the journal does.

When neither is wanted the request passes straight through; otherwise the cost is one
wrapped ``send`` whose per-chunk work is a flag check.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from standby.web.asgi import Message, Receive, Scope, Send
from standby.web.clients import CLIENT_SCOPE_KEY

ASGIApp = Callable[[Scope, Receive, Send], Any]

ACCESS_FIELDS = (
    "request_id",
    "client",
    "method",
    "path",
    "route",
    "target",
    "attempts",
    "status",
    "latency_ms",
)

_WANTED = {
    b"x-request-id": "request_id",
    b"x-standby-route": "route",
    b"x-standby-provider": "provider",
    b"x-standby-model": "model",
    b"x-standby-attempts": "attempts",
}


class ClientCounter(Protocol):
    """Counts a named client's requests by status (``standby.metrics.Metrics``)."""

    def client_request(self, client: str, status: int) -> None: ...


class AccessLog:
    """An ASGI app that logs one line per HTTP request of the app it wraps."""

    def __init__(
        self,
        app: ASGIApp,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.perf_counter,
        metrics: ClientCounter | None = None,
    ) -> None:
        self.app = app
        self.logger = logger or logging.getLogger("standby.access")
        self.clock = clock
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        logging_on = self.logger.isEnabledFor(logging.INFO)
        if not logging_on and self.metrics is None:
            await self.app(scope, receive, send)
            return
        clock = self.clock
        start = clock()
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        end: float | None = None
        started = False

        async def logged_send(message: Message) -> None:
            nonlocal status, headers, end, started
            if started:
                await send(message)
                if not message.get("more_body", False):
                    end = clock()
                return
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = message.get("headers", [])
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        except BaseException:
            if not started:
                status = 500  # what uvicorn answers for an application that raised
            raise
        finally:
            client = scope.get(CLIENT_SCOPE_KEY)
            if client is not None and self.metrics is not None:
                self.metrics.client_request(client, status)
            if logging_on:
                self._log(scope, status, headers, (clock() if end is None else end) - start)

    def _log(
        self, scope: Scope, status: int, headers: list[tuple[bytes, bytes]], elapsed: float
    ) -> None:
        found: dict[str, str] = {}
        for name, value in headers:
            key = _WANTED.get(name.lower())
            if key is not None:
                found[key] = value.decode("latin-1")
        provider = found.get("provider")
        target = f"{provider}/{found.get('model', '-')}" if provider else "-"
        fields: dict[str, Any] = {
            "request_id": found.get("request_id", "-"),
            "client": scope.get(CLIENT_SCOPE_KEY) or "-",
            "method": scope.get("method", "-"),
            "path": scope.get("path", "-"),
            "route": found.get("route", "-"),
            "target": target,
            "attempts": int(found["attempts"]) if found.get("attempts", "").isdigit() else 0,
            "status": status,
            "latency_ms": round(elapsed * 1000.0, 1),
        }
        self.logger.info(
            "%s %s %s %s route=%s target=%s attempts=%d %d %.1fms",
            fields["request_id"],
            fields["client"],
            fields["method"],
            fields["path"],
            fields["route"],
            fields["target"],
            fields["attempts"],
            fields["status"],
            fields["latency_ms"],
            extra=fields,
        )


# the attributes every LogRecord has; anything else on a record came through ``extra=``
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured duplicate of the message
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Each record as one JSON object: ts, level, logger, message, then its extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()
