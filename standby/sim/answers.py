"""What the simulated provider answers: canned text, continuations, tool calls, usage.

Everything here is pure and deterministic, so a test can predict every byte.

Canned text
    ``canned_text(n)`` is ``n`` words joined by single spaces, word ``i`` being
    ``WORDS[i % len(WORDS)]``; no leading or trailing whitespace. A stream carries it as
    one content chunk per word, each word after the first with its leading space
    (``"Standby"``, ``" keeps"``, ``" answering"`` ...), so the chunks concatenate to the
    text exactly. ``split_pieces`` does this split for any text.

Continuation (the rule, applied in this order by ``plan_answer``)
    1. Prefill: the last message is an assistant message with text ``P``.
    2. Instruction: the second-to-last message is an assistant message with text ``P``
       and the last one is a user message (the gateway's "continue" instruction). When
       ``P`` is the whole canned text and that user message does not contain the word
       "continue", it is an ordinary next turn, not a continuation: skip to rule 3.
    For both, ``remainder(full, P)`` is ``full[len(P):]`` when ``full`` starts with
    ``P``; otherwise, when ``full`` starts with ``P.rstrip()``, the rest after that with
    its leading whitespace removed (``P`` already ends in whitespace); otherwise there is
    no match. A prefill that does not match is answered with the full text; an
    instruction that does not match falls through to rule 3. With ``overlap=k`` a matched
    continuation starts with the last ``k`` characters of ``P`` (all of ``P`` if shorter).
    3. Tools: the request has ``tools`` and the last message is not a ``tool`` message:
       one call of the first tool, id ``call_sim_1``, arguments ``ARGUMENTS``.
    4. Otherwise the full canned text.
A message content given as a list of parts counts its ``text`` parts, concatenated.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from dataclasses import dataclass
from typing import Any

import orjson

WORDS: tuple[str, ...] = (
    "Standby",
    "keeps",
    "answering",
    "while",
    "the",
    "primary",
    "provider",
    "recovers,",
    "so",
    "every",
    "customer",
    "still",
    "gets",
    "a",
    "complete",
    "and",
    "coherent",
    "reply",
    "from",
    "us.",
)
ARGUMENTS = '{"city": "Paris", "unit": "celsius"}'
ARGUMENT_PIECES: tuple[str, ...] = ('{"ci', 'ty": "P', 'aris", ', '"unit": ', '"cels', 'ius"}')
TOOL_CALL_ID = "call_sim_1"
EMBEDDING_DIM = 8

_PIECE = re.compile(r"\s*\S+(?:\s+$)?")


def canned_text(words: int) -> str:
    """The full canned answer of ``words`` words."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(words))


def split_pieces(text: str) -> list[str]:
    """Split text into stream chunks: each word with its leading whitespace."""
    pieces: list[str] = _PIECE.findall(text)
    return pieces or ([text] if text else [])  # whitespace only: one piece


def message_text(message: Any) -> str:
    """The text of one chat message (string content or the text parts of a list)."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _messages(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    return messages if isinstance(messages, list) else []


def _role(messages: list[Any], index: int) -> str | None:
    if len(messages) < abs(index) or not isinstance(messages[index], dict):
        return None
    role = messages[index].get("role")
    return role if isinstance(role, str) else None


def ends_with_prefill(body: dict[str, Any]) -> bool:
    """Whether the conversation ends with an assistant message (a prefill)."""
    return _role(_messages(body), -1) == "assistant"


def prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt size in words, counted over every message's text."""
    return sum(len(message_text(m).split()) for m in _messages(body))


def remainder(full: str, prefix: str, overlap: int = 0) -> str | None:
    """What follows ``prefix`` in ``full`` (module rule), or ``None`` if it does not match."""
    if full.startswith(prefix):
        rest = full[len(prefix) :]
    elif full.startswith(prefix.rstrip()):
        rest = full[len(prefix.rstrip()) :].lstrip()
    else:
        return None
    return prefix[-overlap:] + rest if overlap > 0 and prefix else rest


@dataclass(frozen=True, slots=True)
class Answer:
    """One planned answer: either text or a call of the tool named ``tool``."""

    text: str = ""
    tool: str | None = None

    @property
    def pieces(self) -> list[str]:
        """The stream pieces: words of the text, or slices of the tool arguments."""
        return list(ARGUMENT_PIECES) if self.tool else split_pieces(self.text)


def plan_answer(body: dict[str, Any], words: int, overlap: int = 0) -> Answer:
    """Decide the answer to a chat request (see the module docstring for the rule)."""
    full, messages = canned_text(words), _messages(body)
    if _role(messages, -1) == "assistant":
        rest = remainder(full, message_text(messages[-1]), overlap)
        return Answer(text=full if rest is None else rest)
    if _role(messages, -2) == "assistant" and _role(messages, -1) == "user":
        prefix = message_text(messages[-2])
        asks = "continue" in message_text(messages[-1]).lower()
        rest = remainder(full, prefix, overlap)
        if rest is not None and (asks or prefix.strip() != full):
            return Answer(text=rest)
    tools = body.get("tools")
    if isinstance(tools, list) and tools and _role(messages, -1) != "tool":
        function = tools[0].get("function") if isinstance(tools[0], dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        return Answer(tool=str(name or "tool"))
    return Answer(text=full)


@dataclass(frozen=True, slots=True)
class Meta:
    """The fields every completion object and chunk of one reply share."""

    id: str
    created: int
    model: str
    fingerprint: str


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _tool_call(name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": TOOL_CALL_ID,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def completion(answer: Answer, meta: Meta, *, n: int, prompt: int) -> dict[str, Any]:
    """A ``chat.completion`` object with ``n`` identical choices."""
    if answer.tool:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [_tool_call(answer.tool, ARGUMENTS)],
        }
        finish = "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": answer.text}, "stop"
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
        for i in range(n)
    ]
    return {
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": meta.fingerprint,
        "choices": choices,
        "usage": _usage(prompt, len(answer.pieces)),
    }


@dataclass(frozen=True, slots=True)
class Events:
    """A stream's SSE events in parts (``head, *body, finish, usage, done``) for faults;
    ``body`` has one event per content word (or tool-argument slice) and choice."""

    head: bytes
    body: list[bytes]
    finish: bytes
    usage: bytes
    done: bytes = b"data: [DONE]\n\n"


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def stream_events(answer: Answer, meta: Meta, *, n: int, prompt: int, usage: bool) -> Events:
    """Build every event of a streamed reply (tool calls use choice 0 only)."""
    common = {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": meta.fingerprint,
    }

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _event({**common, "choices": [choice]})

    pieces = answer.pieces
    if answer.tool:
        first = {"index": 0, **_tool_call(answer.tool, "")}
        head = chunk(0, {"role": "assistant", "content": None, "tool_calls": [first]})
        body = [
            chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            for piece in pieces
        ]
        finish = chunk(0, {}, "tool_calls")
    else:
        choices = range(n)
        head = b"".join(chunk(i, {"role": "assistant", "content": ""}) for i in choices)
        # A template per choice: serialising only the piece keeps big streams cheap.
        templates = [chunk(i, {"content": "\0"}).split(b'"\\u0000"') for i in choices]
        body = [a + orjson.dumps(piece) + b for piece in pieces for a, b in templates]
        finish = b"".join(chunk(i, {}, "stop") for i in choices)
    tail = _event({**common, "choices": [], "usage": _usage(prompt, len(pieces))}) if usage else b""
    return Events(head=head, body=body, finish=finish, usage=tail)


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """Deterministic dimension-8 vectors, one per input item (base64 when asked)."""
    raw = body.get("input")
    many = isinstance(raw, list) and not all(isinstance(i, int) for i in raw)  # not tokens
    items: list[Any] = raw if many and isinstance(raw, list) else [raw]
    data = []
    for index, item in enumerate(items):
        text = item if isinstance(item, str) else orjson.dumps(item).decode()
        digest = hashlib.blake2b(text.encode(), digest_size=EMBEDDING_DIM).digest()
        vector: Any = [round(b / 127.5 - 1.0, 6) for b in digest]
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{EMBEDDING_DIM}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(
        len(i.split() if isinstance(i, str) else i) for i in items if isinstance(i, (str, list))
    )
    return {
        "object": "list",
        "data": data,
        "model": str(body.get("model") or "sim-embed"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A complete error answer: status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def error_json(message: str, kind: str, code: str | None = None, param: str | None = None) -> bytes:
    """An OpenAI error object; ``kind`` is its ``type``."""
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


PREFILL_MESSAGE = (
    "This model does not support assistant message prefill: a final assistant "
    "message is not supported, the conversation must end with a user message."
)
_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
# fault kind: (default status, type, code, param, message)
_ERRORS: dict[str, tuple[int, str, str | None, str | None, str]] = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
        None,
        "Rate limit reached for requests (simulated). Please try again later.",
    ),
    "error": (500, "server_error", None, None, _SERVER_ERROR),
    "context_length": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "messages",
        "This model's maximum context length is 8192 tokens. However, your "
        "messages resulted in {tokens} tokens. Please reduce the length of the "
        "messages.",
    ),
    "content_policy": (
        400,
        "invalid_request_error",
        "content_policy_violation",
        None,
        "Your request was rejected as a result of our safety system. Your "
        "prompt may contain text that is not allowed by our safety system.",
    ),
    "reject_prefill": (400, "invalid_request_error", None, "messages", PREFILL_MESSAGE),
    "auth": (
        401,
        "invalid_request_error",
        "invalid_api_key",
        None,
        "Incorrect API key provided: sk-sim***. Check the key of this provider.",
    ),
    "quota": (
        402,
        "insufficient_quota",
        "insufficient_quota",
        None,
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "error_body_200": (200, "server_error", None, None, _SERVER_ERROR),
}
_SERVER_MESSAGES = {
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}
_HTML = (
    "<!DOCTYPE html><html><head><title>{status} | sim-cdn</title></head><body>"
    "<h1>Error {status}</h1><p>The origin web server is not answering.</p>"
    "<hr><p>sim-cdn</p></body></html>"
)
ERROR_KINDS: frozenset[str] = frozenset({*_ERRORS, "html"} - {"quota"})


def error_reply(
    kind: str,
    status: int | None = None,
    retry_after: float | None = None,
    *,
    stream: bool = False,
    prompt: int = 0,
) -> ErrorReply:
    """The answer of an error fault kind (one of ``ERROR_KINDS``), in OpenAI's shape.

    ``auth`` answers ``invalid_api_key`` for 401/403 and ``insufficient_quota`` for any
    other status; ``error_body_200`` on a stream is one SSE event carrying the error.
    """
    if kind == "html":
        return ErrorReply(status or 200, _HTML.format(status=status or 200).encode(), "text/html")
    if kind == "auth" and status not in (None, 401, 403):
        kind = "quota"
    default, type_, code, param, message = _ERRORS[kind]
    status = status or default
    if kind == "error":
        message = _SERVER_MESSAGES.get(status, message)
    body = error_json(message.format(tokens=max(prompt, 8193)), type_, code, param)
    if kind == "error_body_200" and stream:
        return ErrorReply(status, b"data: " + body + b"\n\n", "text/event-stream")
    headers = () if retry_after is None else (("Retry-After", f"{retry_after:g}"),)
    return ErrorReply(status, body, headers=headers)
