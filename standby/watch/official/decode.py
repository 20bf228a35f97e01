"""From a status page's bytes to values the parsers can trust: JSON (telling an HTML page
apart from a broken document), timestamps, plain text. Pure functions."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

# what a parser accepts: the body as fetched, or a document already decoded
Body = bytes | str | dict[str, Any] | list[Any]

_BOM = "\ufeff"
_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r"<\s*(br|/p|/li|/div|/h\d|/tr)\b[^>]*>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Why a body could not be decoded (becomes a reading's ``error``)."""

    reason: str


def text_of(body: bytes | str) -> str:
    """The body as text (UTF-8, undecodable bytes replaced), without a byte-order mark."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text.lstrip(_BOM)


def looks_like_html(text: str) -> bool:
    """An HTML page (a login wall, an error page, the human status page)? Markup that
    opens as a feed (``<rss``, ``<feed``, ``<?xml …><rss``) is not."""
    head = text[:1024].lstrip().lower()
    if head.startswith(("<!doctype html", "<html")):
        return True
    return head.startswith("<") and "<html" in head and "<rss" not in head and "<feed" not in head


def load_json(body: Body) -> Any | Unreadable:
    """The decoded JSON document, or why there is none."""
    if isinstance(body, dict | list):
        return body
    text = text_of(body)
    start = text.lstrip()[:1]
    if not start:
        return Unreadable("an empty body, not JSON")
    if start == "<":
        if looks_like_html(text):
            return Unreadable("an HTML page, not the status API (moved, or behind a login?)")
        return Unreadable("an XML document, not JSON")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Unreadable(f"invalid JSON: {exc}")


def parse_time(value: object) -> float | None:
    """An ISO 8601 timestamp as seconds since the epoch (UTC when it names no zone)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def plain_text(markup: str) -> str:
    """Text of a little HTML (an update body, a feed entry): tags dropped, entities
    decoded, one line per paragraph or list item, blank lines dropped."""
    text = _TAG.sub("", _BREAK.sub("\n", markup))
    lines = (_SPACES.sub(" ", line).strip() for line in html.unescape(text).split("\n"))
    return "\n".join(line for line in lines if line)


def string(value: object) -> str:
    """``value`` if it is a string, else ``""`` (vendors send null for absent text)."""
    return value if isinstance(value, str) else ""


def dicts(value: object) -> list[dict[str, Any]]:
    """The objects of a JSON list (``[]`` for anything else: vendors send null)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
