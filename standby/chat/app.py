"""The chat page's HTTP side: the page itself, its script and style, and a small JSON API.

``GET /chat`` is one HTML page (no CDN: its script and style are served from the
package, under ``/chat/static/``).  Everything else is under ``/chat/api/``:

    GET    conversations[?before=<updated_at>:<id>]    the sidebar, newest first, by pages
    GET    conversations/{id}                          one conversation, every branch
    PATCH  conversations/{id}                          {"title": …}
    DELETE conversations/{id}
    POST   conversations/{id}/current                  {"message_id": …}: show that version
    GET    conversations/{id}/export?format=markdown|json
    GET    export?format=markdown|json                 every conversation
    POST   messages                                    {"content", "conversation_id"?,
                                                        "parent_id"?, "model"?} → an event
                                                        stream of the answer
    GET    messages/{id}/events                        follow an answer being written
    POST   messages/{id}/stop
    GET    search?q=…
    GET    status                                      providers, open incidents, models

Who is asking comes from ``identify`` (the gateway's client keys: each client sees its
own conversations; with no keys, one user sees all).  A write must be JSON and, when the
browser names an ``Origin``, come from the page's own host: another site open in the
same browser cannot post to the chat (a form cannot send JSON without a preflight, which
is never granted).  Bodies are bounded; errors are OpenAI-shaped JSON.
"""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from standby.chat.engine import ChatEngine, Event, Generation
from standby.chat.store import ChatStore
from standby.errors import ChatNotFound, ClientError, InvalidRequest, StandbyError

log = logging.getLogger("standby.chat")

MAX_BODY = 512 * 1024  # bytes of a JSON body (a question may be long; not a file)
MAX_QUESTION = 200_000  # characters of one question
_STATIC = {
    "chat.js": "text/javascript; charset=utf-8",
    "chat.css": "text/css; charset=utf-8",
}
_PAGE_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

Identify = Callable[[Request], str | None]  # the request's owner, or raises Unauthorized
Status = Callable[[], Awaitable[dict[str, Any]]]


def _asset(name: str) -> bytes:
    return importlib.resources.files("standby.chat").joinpath("static", name).read_bytes()


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def _error(error: StandbyError) -> Response:
    code: str | None
    if isinstance(error, ChatNotFound):
        status, kind, code, message = 404, "invalid_request_error", "not_found", str(error)
    elif isinstance(error, ClientError):
        status, kind, code, message = error.status, error.type, error.code, error.message
    else:
        status, kind, code, message = 500, "server_error", None, str(error)
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return _json(body, status)


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def chat_app(engine: ChatEngine, identify: Identify, status: Status) -> Starlette:
    """The chat page and its API over ``engine``."""
    store: ChatStore = engine.store
    page = _asset("index.html")
    assets = {name: (_asset(name), kind) for name, kind in _STATIC.items()}

    async def body_of(request: Request) -> dict[str, Any]:
        """A write's JSON body, after the checks that keep other sites out."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise InvalidRequest("The chat's API takes JSON (Content-Type: application/json).")
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
            raise InvalidRequest("A write to the chat must come from its own page.")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            raise InvalidRequest(f"The body is larger than {MAX_BODY} bytes.")
        raw = b""
        async for part in request.stream():
            raw += part
            if len(raw) > MAX_BODY:
                raise InvalidRequest(f"The body is larger than {MAX_BODY} bytes.")
        try:
            data = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"The body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidRequest("The body must be a JSON object.")
        return data

    def handled(
        handler: Callable[[Request, str | None], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                owner = identify(request)
                return await handler(request, owner)
            except StandbyError as error:
                return _error(error)

        return endpoint

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    async def static(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            return Response(b"not found", 404, media_type="text/plain")
        content, kind = found
        return Response(content, media_type=kind, headers={"cache-control": "no-cache"})

    async def listing(request: Request, owner: str | None) -> Response:
        before = _cursor(request.query_params.get("before"))
        found = await store.conversations(owner, before=before, limit=50)
        return _json(
            {
                "conversations": [c.as_dict() for c in found],
                "next": f"{found[-1].updated_at!r}:{found[-1].id}" if len(found) == 50 else None,
            }
        )

    async def conversation(request: Request, owner: str | None) -> Response:
        cid = request.path_params["cid"]
        if request.method == "DELETE":
            if not await store.delete(owner, cid):
                raise ChatNotFound(f"no conversation {cid}")
            return _json({"deleted": cid})
        if request.method == "PATCH":
            title = (await body_of(request)).get("title")
            if not isinstance(title, str) or not title.strip() or len(title) > 200:
                raise InvalidRequest("'title' must be text of 1 to 200 characters.")
            if not await store.rename(owner, cid, title.strip()):
                raise ChatNotFound(f"no conversation {cid}")
        thread = await store.get(owner, cid)
        if thread is None:
            raise ChatNotFound(f"no conversation {cid}")
        return _json(
            {
                "conversation": thread.conversation.as_dict(),
                "messages": [m.as_dict() for m in thread.messages],
                "branch": [m.id for m in thread.branch()],
            }
        )

    async def current(request: Request, owner: str | None) -> Response:
        cid = request.path_params["cid"]
        message_id = (await body_of(request)).get("message_id")
        thread = await store.get(owner, cid)
        if thread is None:
            raise ChatNotFound(f"no conversation {cid}")
        leaf = thread.latest_leaf(message_id) if isinstance(message_id, str) else None
        if leaf is None:
            raise InvalidRequest("'message_id' must name a message of this conversation.")
        await store.set_current(owner, cid, leaf.id)
        return _json({"branch": [m.id for m in thread.branch(leaf.id)]})

    async def export_one(request: Request, owner: str | None) -> Response:
        cid = request.path_params["cid"]
        return await _export(store, owner, cid, request.query_params.get("format", "markdown"))

    async def export_all(request: Request, owner: str | None) -> Response:
        return await _export(store, owner, None, request.query_params.get("format", "json"))

    async def send(request: Request, owner: str | None) -> Response:
        data = await body_of(request)
        content = data.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InvalidRequest("'content' must be the question's text.")
        if len(content) > MAX_QUESTION:
            raise InvalidRequest(f"A question is at most {MAX_QUESTION} characters.")
        ids = {name: data.get(name) for name in ("conversation_id", "parent_id", "model")}
        for name, value in ids.items():
            if value is not None and (not isinstance(value, str) or len(value) > 256):
                raise InvalidRequest(f"'{name}' must be a string.")
        question, generation = await engine.send(
            owner,
            ids["conversation_id"],
            content,
            parent_id=ids["parent_id"],
            model=ids["model"],
        )
        start = {
            "conversation_id": generation.conversation_id,
            "question": question.as_dict(),
            "answer_id": generation.message_id,
        }
        return _stream(generation, first=("start", start))

    async def events(request: Request, owner: str | None) -> Response:
        mid = request.path_params["mid"]
        generation = engine.generation(mid)
        if generation is None or (owner is not None and generation.owner != owner):
            raise ChatNotFound(f"no answer {mid} is being written")
        return _stream(generation)

    async def stop(request: Request, owner: str | None) -> Response:
        await body_of(request)
        mid = request.path_params["mid"]
        if not await engine.stop(owner, mid):
            raise ChatNotFound(f"no answer {mid} is being written")
        return _json({"stopped": mid})

    async def search(request: Request, owner: str | None) -> Response:
        query = request.query_params.get("q", "")[:500]
        hits = await store.search(owner, query, limit=30)
        return _json(
            {
                "hits": [
                    {
                        "conversation": hit.conversation.as_dict(),
                        "message_id": hit.message_id,
                        "segments": hit.segments(),
                    }
                    for hit in hits
                ]
            }
        )

    async def providers(request: Request, owner: str | None) -> Response:
        return _json(await status())

    return Starlette(
        routes=[
            Route("/chat", index),
            Route("/chat/", index),
            Route("/chat/static/{name}", static),
            Route("/chat/api/conversations", handled(listing)),
            Route(
                "/chat/api/conversations/{cid}",
                handled(conversation),
                methods=["GET", "PATCH", "DELETE"],
            ),
            Route("/chat/api/conversations/{cid}/current", handled(current), methods=["POST"]),
            Route("/chat/api/conversations/{cid}/export", handled(export_one)),
            Route("/chat/api/export", handled(export_all)),
            Route("/chat/api/messages", handled(send), methods=["POST"]),
            Route("/chat/api/messages/{mid}/events", handled(events)),
            Route("/chat/api/messages/{mid}/stop", handled(stop), methods=["POST"]),
            Route("/chat/api/search", handled(search)),
            Route("/chat/api/status", handled(providers)),
        ]
    )


def _stream(generation: Generation, first: Event | None = None) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        if first is not None:
            yield _sse(*first)
        async for kind, data in generation.follow():
            yield _sse(kind, data)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def _cursor(value: str | None) -> tuple[float, str] | None:
    if not value:
        return None
    at, _, cid = value.partition(":")
    try:
        return float(at), cid
    except ValueError:
        raise InvalidRequest("'before' must be the 'next' of a previous page.") from None


async def _export(store: ChatStore, owner: str | None, cid: str | None, kind: str) -> Response:
    if kind not in ("markdown", "json"):
        raise InvalidRequest("'format' must be markdown or json.")
    pieces: AsyncIterator[bytes]
    if kind == "markdown":
        media, suffix = "text/markdown; charset=utf-8", "md"
        pieces = _encoded(store.export_markdown(owner, cid))
    else:
        media, suffix = "application/json", "json"
        pieces = store.export_json(owner, cid)
    if cid is not None and await store.get(owner, cid) is None:  # a 404, not a broken file
        raise ChatNotFound(f"no conversation {cid}")
    name = cid or "conversations"
    return StreamingResponse(
        pieces,
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{name}.{suffix}"'},
    )


async def _encoded(texts: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for text in texts:
        yield text.encode()
