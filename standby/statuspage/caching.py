"""One way for every public answer of the status page to be cheap to ask again.

* A short ``Cache-Control`` and an ETag, so a visitor's ``If-None-Match`` costs a
  comparison and a 304.
* ``Rendered``: each answer is rendered once per built view (the page, a document of the
  API, a feed, in one language) and served from memory until the next view is built —
  during an outage, a flood of visitors costs a dictionary lookup each, not a render.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable

from starlette.requests import Request
from starlette.responses import Response

from standby.statuspage.model import PageView

Answer = tuple[bytes, str]  # the body and its ETag


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def respond(
    request: Request,
    answer: Answer,
    media_type: str,
    *,
    max_age: int,
    headers: dict[str, str] | None = None,
) -> Response:
    """``answer`` with caching headers, or a 304 when the visitor has it already."""
    body, etag = answer
    found = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}", **(headers or {})}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=found)
    return Response(body, media_type=media_type, headers=found)


def cached(
    request: Request,
    body: bytes,
    media_type: str,
    *,
    max_age: int,
    identity: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """``body`` with caching headers; ``identity`` is what the ETag is computed from when
    it is not the body itself (a document whose timestamp moves but content does not)."""
    answer = (body, etag_of(body if identity is None else identity))
    return respond(request, answer, media_type, max_age=max_age, headers=headers)


class Rendered:
    """Answers rendered from the current view, by key; a new view forgets them all."""

    LIMIT = 256  # answers kept per view (history pages, incidents, languages)

    def __init__(self) -> None:
        self._view: PageView | None = None
        self._answers: dict[Hashable, Answer] = {}

    def get(
        self, view: PageView, key: Hashable, make: Callable[[], tuple[bytes, bytes | None]]
    ) -> Answer:
        """The answer for ``key`` of ``view``; ``make()`` gives (body, identity or None)."""
        if view is not self._view:
            self._view, self._answers = view, {}
        found = self._answers.get(key)
        if found is None:
            body, identity = make()
            found = (body, etag_of(body if identity is None else identity))
            if len(self._answers) < self.LIMIT:
                self._answers[key] = found
        return found
