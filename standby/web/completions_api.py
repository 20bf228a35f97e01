"""Stored chat completions on OpenAI's wire, read from the journal.

So ``client.chat.completions.retrieve / list / update / delete`` and
``client.chat.completions.messages.list`` of the official SDKs work against Standby:

==================================================  =======================================
``GET /v1/chat/completions``                        a page of ``chat.completion``: ``after``,
                                                    ``limit`` (1-100, default 20), ``order``
                                                    (``asc`` | ``desc``), ``model``,
                                                    ``metadata[key]=value`` (all must match)
``GET /v1/chat/completions/{id}``                   one ``chat.completion``
``POST /v1/chat/completions/{id}``                  ``{"metadata": {..}}`` replaces the
                                                    metadata (≤16 strings; null clears)
``DELETE /v1/chat/completions/{id}``                ``chat.completion.deleted``
``GET /v1/chat/completions/{id}/messages``          a page of the request's messages, ids
                                                    ``<id>-<index>``: ``after/limit/order``
==================================================  =======================================

Also without ``/v1``.  Pages are ``{"object": "list", "data", "first_id", "last_id",
"has_more"}``.  A stored completion is the answer the caller got (``model`` names the model
that really answered, after any failover) plus ``metadata``, ``request_id`` and the
request's sampling parameters, as OpenAI returns them.  Under ``journal.redact`` no body
was written: a completion has no ``choices`` and no messages, but still lists and updates.

Stored: every completed chat request, unless the caller sent ``"store": false`` or the
plan says ``journal: {store: false}``.  With that switch off (or the journal off) every
endpoint answers **404** ``stored_completions_disabled``: SDKs raise ``NotFoundError``
without retrying (a 5xx would be retried), and tools probing for the feature read a 404
as "not here".  Unknown ids: 404 ``No chat completion found with id '…'.``; bad
parameters: 400; a missing or wrong client key: 401, exactly as on the chat endpoint.

Reads see their own writes: each call first flushes the write-ahead log into the database
(which trails it by one batch).  With the database unreachable the answer is a 503
``journal_unavailable`` with ``Retry-After``; completions are still served meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, NoReturn, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from standby.errors import ClientError, InvalidRequest, JournalUnavailable, StandbyError
from standby.journal.store import JournalStore, StoredCompletion
from standby.plan.model import JournalConfig
from standby.web import errors
from standby.web.asgi import read_body
from standby.web.clients import Caller, ClientKeys

log = logging.getLogger("standby.web")

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
MAX_METADATA_KEYS, MAX_KEY_LENGTH, MAX_VALUE_LENGTH = 16, 64, 512
RETRY_AFTER = 5  # seconds; the writer retries the database on about this scale
_MAX_BODY = 64 * 1024  # an update body is sixteen short strings at most
# request parameters OpenAI echoes on a stored completion (null when the caller left them)
_ECHOED = (
    "tool_choice",
    "seed",
    "top_p",
    "temperature",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "response_format",
)

Endpoint = Callable[[Request, Caller], Awaitable[Response]]
Guarded = Callable[[Request], Awaitable[Response]]


class CompletionsService(Protocol):
    """What these endpoints need of the journal (``standby.journal.service.JournalService``)."""

    @property
    def store(self) -> JournalStore: ...

    @property
    def config(self) -> JournalConfig: ...

    async def flush(self) -> None:
        """Bring the database up to date with the write-ahead log (read-your-writes)."""
        ...


class _NotFound(ClientError):
    status = 404


def completions_routes(service: CompletionsService | None, keys: ClientKeys) -> list[Route]:
    """Starlette routes for the stored-completions endpoints, with and without ``/v1``.

    ``service`` is ``None`` when the journal is off: every endpoint is then the 404
    ``stored_completions_disabled``, as with ``journal.store: false``.
    """
    api = (
        _StoredCompletions(service)
        if service is not None and service.config.enabled and service.config.store != "never"
        else None
    )
    listing, one, messages = (
        _guard(endpoint, keys)
        for endpoint in ((api.listing, api.one, api.messages) if api else (_disabled,) * 3)
    )
    return [
        route
        for base in ("/v1/chat/completions", "/chat/completions")
        for route in (
            Route(base, listing, methods=["GET"]),
            Route(base + "/{completion_id}", one, methods=["GET", "POST", "DELETE"]),
            Route(base + "/{completion_id}/messages", messages, methods=["GET"]),
        )
    ]


async def _disabled(request: Request, caller: Caller) -> Response:
    raise _NotFound(
        "Stored completions are disabled by this gateway's plan (journal.store "
        "is never, or the journal is off): no completion is stored.",
        code="stored_completions_disabled",
    )


def _guard(endpoint: Endpoint, keys: ClientKeys) -> Guarded:
    """The client key (or the admin token), then the endpoint with its caller; errors in
    OpenAI's shape."""

    async def guarded(request: Request) -> Response:
        try:
            caller = keys.identify(request.scope, admin=True)
            return await endpoint(request, caller)
        except JournalUnavailable as error:
            log.info("stored completion read refused: %s", error)  # the writer warns once
            body = errors.error_body(
                "The journal database is unreachable right now; stored completions cannot "
                f"be read. Please retry after {RETRY_AFTER}s.",
                type="server_error",
                code="journal_unavailable",
            )
            return Response(
                body, 503, headers={"retry-after": str(RETRY_AFTER)}, media_type="application/json"
            )
        except StandbyError as error:
            status, body, headers = errors.render(error)
            return Response(
                body,
                status,
                headers={k.decode(): v.decode() for k, v in headers},
                media_type="application/json",
            )

    return guarded


class _StoredCompletions:
    """The endpoint bodies, over a journal service."""

    def __init__(self, service: CompletionsService) -> None:
        self.service = service

    async def listing(self, request: Request, caller: Caller) -> Response:
        limit, order, after = _cursor(request)
        metadata = _metadata_filter(request.query_params.multi_items())
        await self.service.flush()
        items, has_more = await self.service.store.list_completions(
            model=request.query_params.get("model") or None,
            metadata=metadata or None,
            after=after,
            limit=limit,
            order=order,
            owner=caller.owner,
        )
        return _json(_page([_completion(item) for item in items], has_more))

    async def one(self, request: Request, caller: Caller) -> Response:
        completion_id = request.path_params["completion_id"]
        if request.method == "POST":
            metadata = _metadata_update(await read_body(request.scope, request.receive, _MAX_BODY))
            await self.service.flush()
            updated = await self.service.store.update_metadata(
                completion_id, metadata, owner=caller.owner
            )
            return _json(_completion(updated or _missing(completion_id)))
        await self.service.flush()
        if request.method == "DELETE":
            if not await self.service.store.delete_completion(completion_id, owner=caller.owner):
                _missing(completion_id)
            return _json(
                {"id": completion_id, "object": "chat.completion.deleted", "deleted": True}
            )
        found = await self.service.store.get_completion(completion_id, owner=caller.owner)
        return _json(_completion(found or _missing(completion_id)))

    async def messages(self, request: Request, caller: Caller) -> Response:
        completion_id = request.path_params["completion_id"]
        limit, order, after = _cursor(request)
        await self.service.flush()
        found = await self.service.store.get_completion(
            completion_id, owner=caller.owner
        ) or _missing(completion_id)
        raw = (found.request or {}).get("messages")
        entries = [
            _message(completion_id, index, message)
            for index, message in enumerate(raw if isinstance(raw, list) else [])
            if isinstance(message, dict)
        ]
        if order == "desc":
            entries.reverse()
        start = 0
        if after is not None:
            ids = [entry["id"] for entry in entries]
            if after not in ids:
                raise InvalidRequest(
                    f"Invalid 'after': no message with id '{after}' in chat "
                    f"completion '{completion_id}'.",
                    param="after",
                )
            start = ids.index(after) + 1
        return _json(_page(entries[start : start + limit], start + limit < len(entries)))


def _missing(completion_id: str) -> NoReturn:
    raise _NotFound(f"No chat completion found with id '{completion_id}'.")


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def _completion(record: StoredCompletion) -> dict[str, Any]:
    """A stored completion as OpenAI returns it: the answer, its metadata, its request."""
    body: dict[str, Any] = {
        "object": "chat.completion",
        "choices": [],
        **(record.response or {}),
        "id": record.completion_id,
    }
    body.setdefault("created", int(record.created))
    body.setdefault("model", record.model)
    body["request_id"] = record.rid
    body["metadata"] = dict(record.metadata)
    request = record.request or {}
    for key in _ECHOED:
        body.setdefault(key, request.get(key))
    body.setdefault("input_user", request.get("user"))
    return body


def _message(completion_id: str, index: int, message: dict[str, Any]) -> dict[str, Any]:
    """A request message as a ``ChatCompletionStoreMessage`` (array content: text joined)."""
    content = message.get("content")
    parts = None
    if isinstance(content, list):
        parts = [
            part
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "image_url")
        ]
        texts = [str(part.get("text", "")) for part in parts if part["type"] == "text"]
        content = "".join(texts) if texts else None
    return {
        **message,
        "id": f"{completion_id}-{index}",
        "content": content,
        "name": message.get("name"),
        "content_parts": parts,
    }


def _cursor(request: Request) -> tuple[int, Literal["asc", "desc"], str | None]:
    """``limit``, ``order`` and ``after`` of a page request."""
    query = request.query_params
    return _limit(query.get("limit")), _order(query.get("order")), query.get("after") or None


def _limit(raw: str | None) -> int:
    if not raw:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(
            f"Invalid 'limit': expected an integer, but got '{raw}' instead.",
            param="limit",
            code="invalid_type",
        ) from None
    if not 1 <= value <= MAX_LIMIT:
        side, bound = ("below_min", ">= 1") if value < 1 else ("above_max", f"<= {MAX_LIMIT}")
        raise InvalidRequest(
            f"Invalid 'limit': integer {side.replace('_', ' ')}imum value. "
            f"Expected a value {bound}, but got {value} instead.",
            param="limit",
            code=f"integer_{side}_value",
        )
    return value


def _order(raw: str | None) -> Literal["asc", "desc"]:
    if not raw or raw == "asc":
        return "asc"
    if raw == "desc":
        return "desc"
    raise InvalidRequest(
        f"Invalid value: '{raw}'. Supported values are: 'asc' and 'desc'.",
        param="order",
        code="invalid_value",
    )


def _metadata_filter(items: list[tuple[str, str]]) -> dict[str, str]:
    """``metadata[key]=value`` query parameters (how the SDKs encode the filter)."""
    wanted = {
        key[9:-1]: value
        for key, value in items
        if key.startswith("metadata[") and key.endswith("]") and len(key) > 10
    }
    _check_metadata(wanted)
    return wanted


def _metadata_update(raw: bytes) -> dict[str, str]:
    """The new metadata of ``POST /v1/chat/completions/{id}`` (``null`` clears it)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if "metadata" not in body:
        raise InvalidRequest(
            "Missing required parameter: 'metadata'.",
            param="metadata",
            code="missing_required_parameter",
        )
    metadata = body["metadata"] if body["metadata"] is not None else {}
    if not isinstance(metadata, dict):
        raise InvalidRequest(
            "Invalid type for 'metadata': expected an object of string values.",
            param="metadata",
            code="invalid_type",
        )
    _check_metadata(metadata)
    return metadata


def _check_metadata(metadata: dict[str, Any]) -> None:
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidRequest(
            f"Invalid 'metadata': too many properties. Expected at most "
            f"{MAX_METADATA_KEYS}, but got {len(metadata)} instead.",
            param="metadata",
            code="object_above_max_size",
        )
    for key, value in metadata.items():
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidRequest(
                f"Invalid 'metadata': key '{key[:MAX_KEY_LENGTH]}…' is too long. Expected "
                f"keys of at most {MAX_KEY_LENGTH} characters, but got {len(key)}.",
                param="metadata",
                code="string_above_max_length",
            )
        if not isinstance(value, str):
            raise InvalidRequest(
                f"Invalid type for 'metadata.{key}': expected a string.",
                param=f"metadata.{key}",
                code="invalid_type",
            )
        if len(value) > MAX_VALUE_LENGTH:
            raise InvalidRequest(
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum "
                f"length {MAX_VALUE_LENGTH}, but got a string with length {len(value)} "
                "instead.",
                param=f"metadata.{key}",
                code="string_above_max_length",
            )
