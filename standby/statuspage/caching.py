"""One way for every public answer of the status page to be cheap to ask again.

* A short ``Cache-Control`` and an ETag, so a visitor's ``If-None-Match`` costs a
  comparison and a 304.
* ``Rendered``: each answer is rendered once per built view (the page, a document of the
  API, a feed, in one language) and served from memory until the next view is built —
  during an outage, a flood of visitors costs a dictionary lookup each, not a render.
* Gzip for visitors that accept it (every browser), compressed once per answer: the
  page is ~166 KiB of HTML (90 day cells per component, each with words for screen
  readers) and ~10 times less gzipped.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Hashable

from starlette.requests import Request
from starlette.responses import Response

from standby.statuspage.model import PageView

COMPRESS_FROM = 1024  # bytes: a smaller answer is sent as it is


class Answer:
    """A body, its ETag, and its gzip form, made the first time a visitor accepts it
    (an answer lives as long as its view: compressed once, sent many times)."""

    __slots__ = ("_gzipped", "body", "etag")

    def __init__(self, body: bytes, etag: str) -> None:
        self.body, self.etag = body, etag
        self._gzipped: bytes | None = None

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def respond(
    request: Request,
    answer: Answer,
    media_type: str,
    *,
    max_age: int,
    headers: dict[str, str] | None = None,
) -> Response:
    """``answer`` with caching headers — gzipped for a visitor that accepts it, with an
    ETag of its own, as a shared cache needs — or a 304 when the visitor has it already."""
    body, etag = answer.body, answer.etag
    found = {"Cache-Control": f"public, max-age={max_age}", **(headers or {})}
    if len(body) >= COMPRESS_FROM:
        found["Vary"] = "Accept-Encoding"
        if _accepts_gzip(request):
            body, etag = answer.gzipped(), etag[:-1] + '-gzip"'
            found["Content-Encoding"] = "gzip"
    found["ETag"] = etag
    if request.headers.get("if-none-match") == etag:
        found.pop("Content-Encoding", None)
        return Response(status_code=304, headers=found)
    return Response(body, media_type=media_type, headers=found)


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
            found = Answer(body, etag_of(body if identity is None else identity))
            if len(self._answers) < self.LIMIT:
                self._answers[key] = found
        return found
