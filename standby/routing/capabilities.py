"""What a request needs, what a target can do, and why a target cannot serve a request.

Pure functions over the caller's (OpenAI-shaped) body; no I/O.  ``needs`` reads the body
once per request and only as deep as the route requires (``Depth``): a route whose
targets all support everything is never examined, one that only restricts JSON schema
looks at a top-level key, and only a route with a text-only, tool-less or small-context
target walks the messages.

The prompt size is an estimate, not a tokenizer: UTF-8 bytes of the text / 4 (ASCII
text: characters / 4; CJK text comes out closer to a token per character), a few tokens
per message, a fixed allowance per image, plus the output the caller asks room for
(``max_tokens`` / ``max_completion_tokens``), since a provider refuses a request whose
prompt and requested output together exceed its context.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson

from standby.errors import InvalidRequest

__all__ = ["EVERYTHING", "Caps", "Depth", "Needs", "depth_for", "needs", "refusal", "unfit"]

IMAGE_TOKENS = 800  # a high-detail image at OpenAI is 765 tokens for 1024x1024
MESSAGE_TOKENS = 4  # role and separators around each message
_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
_TOOL_ROLES = frozenset({"tool", "function"})


@dataclass(frozen=True, slots=True)
class Caps:
    """What one target can serve. ``max_context`` is in tokens; ``None``: not limited."""

    tools: bool = True
    images: bool = True
    json_schema: bool = True
    max_context: int | None = None
    embeddings: bool = True  # the provider's wire has an embeddings endpoint


EVERYTHING = Caps()


@dataclass(frozen=True, slots=True)
class Needs:
    """What one request needs from the target that serves it."""

    tools: bool = False
    images: bool = False
    json_schema: bool = False
    tokens: int = 0  # estimated prompt + requested output; 0 when the messages were not read
    embeddings: bool = False  # an embeddings request, not a chat


class Depth(IntEnum):
    """How much of a request a route must read to screen its targets."""

    NONE = 0  # every target supports everything: nothing to check
    BODY = 1  # top-level keys only (tools, response_format)
    MESSAGES = 2  # walk the messages: images, tool history, prompt size


def depth_for(caps: Iterable[Caps]) -> Depth:
    """The depth a route whose targets have ``caps`` needs."""
    depth = Depth.NONE
    for cap in caps:
        if not cap.embeddings:
            depth = Depth.BODY
        if not cap.images or not cap.tools or cap.max_context is not None:
            return Depth.MESSAGES
        if not cap.json_schema:
            depth = Depth.BODY
    return depth


def needs(body: Mapping[str, Any], depth: Depth = Depth.MESSAGES) -> Needs:
    """What ``body`` (an OpenAI chat request) needs, read as deep as ``depth``."""
    tool_defs = body.get("tools") or body.get("functions")
    tools = bool(tool_defs)
    fmt = body.get("response_format")
    schema = isinstance(fmt, dict) and fmt.get("type") == "json_schema"
    if depth < Depth.MESSAGES:
        return Needs(tools=tools, json_schema=schema)
    size, images, tool_history = _read_messages(body.get("messages"))
    if tool_defs:
        size += len(orjson.dumps(tool_defs))
    tokens = -(-size // 4) + images * IMAGE_TOKENS + _requested_output(body)
    return Needs(tools=tools or tool_history, images=images > 0, json_schema=schema, tokens=tokens)


def _read_messages(messages: Any) -> tuple[int, int, bool]:
    """``(text size in bytes, images, tool history)`` of the messages, in one pass."""
    if not isinstance(messages, list):
        return 0, 0, False
    size, images, tool_history = 0, 0, False
    for message in messages:
        if not isinstance(message, dict):
            continue
        size += MESSAGE_TOKENS * 4
        content = message.get("content")
        if isinstance(content, str):
            size += _text_size(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                kind = part.get("type")
                if isinstance(kind, str) and kind in _IMAGE_PARTS:
                    images += 1
                elif isinstance(text := part.get("text"), str):
                    size += _text_size(text)
        calls = message.get("tool_calls")
        role = message.get("role")
        if calls or message.get("function_call") or (isinstance(role, str) and role in _TOOL_ROLES):
            tool_history = True
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(
                    args := function.get("arguments"), str
                ):
                    size += _text_size(args)
    return size, images, tool_history


def _text_size(text: str) -> int:
    # ASCII (the common case) needs no encoding: its length is its size in bytes
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def _requested_output(body: Mapping[str, Any]) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def unfit(caps: Caps, need: Needs) -> str | None:
    """Why a target with ``caps`` cannot serve ``need``, or ``None`` when it can.

    The reason is one of ``no_embeddings``, ``no_images``, ``no_tools``,
    ``no_json_schema``, ``context_too_small``.
    """
    if caps is EVERYTHING:
        return None
    if need.embeddings and not caps.embeddings:
        return "no_embeddings"
    if need.images and not caps.images:
        return "no_images"
    if need.tools and not caps.tools:
        return "no_tools"
    if need.json_schema and not caps.json_schema:
        return "no_json_schema"
    if caps.max_context is not None and need.tokens > caps.max_context:
        return "context_too_small"
    return None


_PHRASES = {
    "no_embeddings": ("has no embeddings endpoint", "model"),
    "no_images": ("does not accept images", "messages"),
    "no_tools": ("does not support tools", "tools"),
    "no_json_schema": ("does not support response_format json_schema", "response_format"),
}


def refusal(route: str, skipped: Sequence[tuple[str, Caps, str]], need: Needs) -> InvalidRequest:
    """The 400 for a request no target of ``route`` can serve.

    ``skipped`` holds ``(target key, its caps, reason)`` for every target of the route
    (at least one).
    """
    said: list[str] = []
    for key, caps, reason in skipped:
        if reason == "context_too_small":
            said.append(
                f"{key} has a context of {caps.max_context} tokens and this request "
                f"needs about {need.tokens}"
            )
        else:
            said.append(f"{key} {_PHRASES[reason][0]}")
    reasons = {reason for _, _, reason in skipped}
    first = skipped[0][2]
    param = "messages" if first == "context_too_small" else _PHRASES[first][1]
    code = (
        "context_length_exceeded" if reasons == {"context_too_small"} else "unsupported_capability"
    )
    return InvalidRequest(
        f"No target of route `{route}` can serve this request: {'; '.join(said)}.",
        param=param,
        code=code,
    )
