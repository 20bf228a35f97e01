"""The status page's subscription endpoints, for people (HTML forms, no JavaScript) and
for machines (JSON), all under ``/status/``:

    GET  /status/subscribe                               the form
    POST /status/subscribe                               JSON {"kind", "url" | "address",
                                                         "components"}, or the form posted
    GET  /status/subscriptions/{id}/confirm?token=…      an email's confirmation link
    GET  /status/subscriptions/{id}/unsubscribe?token=…  a page with a button
    POST /status/subscriptions/{id}/unsubscribe          does it: the token in the query or
                                                         the form; RFC 8058 one-click too

A JSON request is answered in JSON (errors in OpenAI's shape), anything else with a small
HTML page (jinja2, autoescaped).  Bodies are bounded (``MAX_BODY``: 413 beyond); answers
are never cached and never send a referrer (their URLs carry tokens); a 429 says when to
come back (``Retry-After``).  What is allowed, and how often, is the service's decision
(``statuspage.subscriptions``).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from standby.errors import BodyTooLarge, ClientError, InvalidRequest
from standby.journal.subscription_store import ACTIVE, UNSUBSCRIBED, Subscriber
from standby.notify.redact import origin
from standby.statuspage.html import environment
from standby.statuspage.subscriptions import (
    MailFailed,
    RateLimited,
    Receipt,
    SubscriptionService,
)

MAX_BODY = 8192  # bytes of a request body
MAX_COMPONENTS = 100
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
HTML_HEADERS = {
    **HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}
HEADINGS = {
    403: "No more subscribers",
    404: "Not found",
    413: "Too large",
    429: "Too many requests",
    503: "Not sent",
}
Handler = Callable[[Request], Awaitable[Response]]


def _json_request(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or (
        not kind and "application/json" in request.headers.get("accept", "")
    )


async def _body(request: Request) -> bytes:
    """The request's body, or a 413 once it passes ``MAX_BODY`` (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise BodyTooLarge(f"The body is larger than {MAX_BODY} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyTooLarge(f"The body is larger than {MAX_BODY} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _form(body: bytes) -> dict[str, list[str]]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The form cannot be read.") from None
    found: dict[str, list[str]] = {}
    for key, value in pairs:
        found.setdefault(key, []).append(value)
    return found


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The body is not JSON.") from None
    if not isinstance(value, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return value


def _text(value: Any, param: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(f"`{param}` must be a string.", param=param)
    return value


def _request_fields(as_json: bool, body: bytes) -> tuple[str, str, list[str] | None]:
    """(kind, url or address, components) of a subscription request."""
    if as_json:
        data = _json(body)
        url, address = _text(data.get("url"), "url"), _text(data.get("address"), "address")
        kind = _text(data.get("kind"), "kind")
        components = data.get("components")
        if components is not None and (
            not isinstance(components, list) or not all(isinstance(c, str) for c in components)
        ):
            raise InvalidRequest("`components` must be a list of names.", param="components")
    else:
        form = _form(body)
        url, address = (form.get(key, [""])[-1] for key in ("url", "address"))
        kind = form.get("kind", [""])[-1]
        components = form.get("components")
    if components is not None and len(components) > MAX_COMPONENTS:
        raise InvalidRequest("Too many components.", param="components")
    kind = kind or ("webhook" if url else "email" if address else "")
    if kind not in ("webhook", "email"):
        raise InvalidRequest("`kind` must be webhook or email.", param="kind")
    return kind, url if kind == "webhook" else address, components


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def routes(service: SubscriptionService) -> list[Route]:
    """The subscription routes, answered by ``service``."""
    env = environment()

    async def page(name: str, status: int = 200, **values: Any) -> Response:
        title = (await service.page()).name
        body = env.get_template(name).render(page=title, **values)
        return HTMLResponse(body, status_code=status, headers=HTML_HEADERS)

    async def message(
        heading: str, words: str, *, status: int = 200, link: str = "", link_text: str = ""
    ) -> Response:
        tone = "ok" if status < 400 else "problem"
        return await page(
            "subscribe_message.html",
            status,
            heading=heading,
            message=words,
            tone=tone,
            link=link,
            link_text=link_text,
        )

    async def problem(request: Request, error: ClientError | MailFailed) -> Response:
        headers = dict(HEADERS)
        if isinstance(error, RateLimited):
            headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        if _json_request(request):
            fields = {
                "message": error.message,
                "type": error.type,
                "param": error.param,
                "code": error.code,
            }
            return JSONResponse({"error": fields}, error.status, headers=headers)
        heading = HEADINGS.get(error.status, "Not subscribed")
        response = await message(heading, error.message, status=error.status)
        response.headers.update(headers)
        return response

    def guarded(handler: Handler) -> Handler:
        async def guard(request: Request) -> Response:
            try:
                return await handler(request)
            except (ClientError, MailFailed) as error:
                return await problem(request, error)

        return guard

    def absolute(request: Request, url: str) -> str:
        """A link for the requester itself (never for a mail): relative ones made whole."""
        return url if "://" in url else str(request.base_url).rstrip("/") + url

    async def form(request: Request) -> Response:
        components = await service.components()
        return await page("subscribe_form.html", kinds=service.kinds, components=components)

    async def subscribe(request: Request) -> Response:
        as_json = _json_request(request)
        kind, address, components = _request_fields(as_json, await _body(request))
        receipt = await service.subscribe(kind, address, components, _client(request))
        unsubscribe = absolute(request, receipt.unsubscribe_url or "")
        if as_json:
            status = 201 if receipt.state == ACTIVE else 202  # an email waits for its link
            return JSONResponse(_receipt_json(receipt, unsubscribe), status, headers=HEADERS)
        return await page("subscribe_done.html", receipt=receipt, unsubscribe=unsubscribe)

    async def confirm(request: Request) -> Response:
        subscriber_id = request.path_params["id"]
        token = request.query_params.get("token", "")
        await service.confirm(subscriber_id, token, _client(request))
        return await message(
            "Subscription confirmed",
            "You will receive a mail for every update of an incident, from now on. Each "
            "mail has a link to unsubscribe.",
            link=service.unsubscribe_url(subscriber_id),
            link_text="Unsubscribe",
        )

    async def unsubscribe_page(request: Request) -> Response:
        subscriber_id = request.path_params["id"]
        token = request.query_params.get("token", "")
        subscriber = await service.check(subscriber_id, token, _client(request))
        return await page(
            "subscribe_unsubscribe.html",
            subscriber_id=subscriber_id,
            token=token,
            where=_where(subscriber),
            ended=subscriber.state == UNSUBSCRIBED,
        )

    async def unsubscribe(request: Request) -> Response:
        subscriber_id = request.path_params["id"]
        body = await _body(request)
        token = request.query_params.get("token", "")
        if not token and _json_request(request):
            token = _text(_json(body).get("token"), "token")
        elif not token:  # our form; a one-click POST carries the token in its URL
            token = _form(body).get("token", [""])[-1]
        subscriber = await service.unsubscribe(subscriber_id, token, _client(request))
        if _json_request(request):
            state = {"id": subscriber.id, "state": subscriber.state}
            return JSONResponse(state, headers=HEADERS)
        return await message(
            "Unsubscribed",
            f"Nothing more will be sent to {_where(subscriber)}.",
            link="/status/subscribe",
            link_text="Subscribe again",
        )

    return [
        Route("/status/subscribe", guarded(form), methods=["GET"]),
        Route("/status/subscribe", guarded(subscribe), methods=["POST"]),
        Route("/status/subscriptions/{id}/confirm", guarded(confirm), methods=["GET"]),
        Route("/status/subscriptions/{id}/unsubscribe", guarded(unsubscribe_page), methods=["GET"]),
        Route("/status/subscriptions/{id}/unsubscribe", guarded(unsubscribe), methods=["POST"]),
    ]


def _where(subscriber: Subscriber) -> str:
    """Where a subscriber's updates go, as shown to whoever holds its link: a webhook by
    its origin only (its path may hold a token)."""
    return origin(subscriber.address) if subscriber.kind == "webhook" else subscriber.address


def _receipt_json(receipt: Receipt, unsubscribe: str) -> dict[str, Any]:
    if receipt.kind == "email":
        return {
            "kind": "email",
            "state": receipt.state,
            "components": receipt.components,
            "message": "Check your inbox: the subscription starts once its link is followed.",
        }
    return {
        "id": receipt.id,
        "kind": receipt.kind,
        "state": receipt.state,
        "components": receipt.components,
        "secret": receipt.secret,
        "unsubscribe_url": unsubscribe,
    }
