"""Journal exports: one ``RequestRow`` → a JSON line, a chat-dataset line or a Markdown page.

Three formats, each a pure function of one row (plus the fields to redact):

``jsonl``        every request, all of it: ``record(row)`` is the object, ``from_record``
                 reads it back (``json.loads`` of a line → the same ``RequestRow``).
``openai-chat``  completed chat requests only, as ``{"messages": [..., assistant answer]}``
                 (the chat fine-tuning format): a dataset of what the gateway answered.
``markdown``     one page per conversation, for people: metadata, messages, answer, attempts.

Redaction names dotted paths into the ``jsonl`` record (``metadata.user_email``,
``request.messages``, ``response``); a path crossing a list applies to every element
(``request.messages.content`` keeps the roles, hides the text).  ``iter_requests`` pages
through a ``JournalStore`` with its ``before`` cursor, so an export never holds more than
one page of the journal in memory.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from typing import Any

import orjson

from standby.journal.store import JournalStore, RequestRow

__all__ = [
    "FORMATS",
    "REDACTED",
    "chat_line",
    "from_record",
    "iter_requests",
    "jsonl_line",
    "markdown_name",
    "markdown_page",
    "parse_when",
    "record",
    "redact",
]

FORMATS = ("jsonl", "openai-chat", "markdown")
REDACTED = "[redacted]"
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_AGO_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_UNIX = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")


def record(row: RequestRow) -> dict[str, Any]:
    """The ``jsonl`` object of one request (times are unix seconds, exact floats)."""
    data = dataclasses.asdict(row)
    data["attempts"] = [list(attempt) for attempt in row.attempts]
    return data


def from_record(data: dict[str, Any]) -> RequestRow:
    """A ``RequestRow`` back from its ``jsonl`` object (the export's round trip)."""
    fields = {f.name for f in dataclasses.fields(RequestRow)}
    values = {key: value for key, value in data.items() if key in fields}
    values["attempts"] = [(str(t), str(o), float(s)) for t, o, s in data.get("attempts") or []]
    values["metadata"] = dict(data.get("metadata") or {})
    return RequestRow(**values)


def redact(data: dict[str, Any], fields: Collection[str]) -> dict[str, Any]:
    """A copy of ``data`` with each dotted path's value replaced by ``"[redacted]"``.

    Missing paths and ``null`` values are left alone; ``data`` itself is not modified.
    ``metadata…`` paths cover the request body's own ``metadata`` too (its source).
    """
    for path in fields:
        data = _redact(data, path.split("."))
        if path == "metadata" or path.startswith("metadata."):
            data = _redact(data, ["request", *path.split(".")])
    return data


def _redact(value: Any, parts: list[str]) -> Any:
    if isinstance(value, list):
        return [_redact(item, parts) for item in value]
    if not isinstance(value, dict) or parts[0] not in value:
        return value
    head, rest = parts[0], parts[1:]
    out = dict(value)
    if rest:
        out[head] = _redact(value[head], rest)
    elif value[head] is not None:
        out[head] = REDACTED
    return out


def jsonl_line(row: RequestRow, fields: Collection[str] = ()) -> bytes:
    """One line of the ``jsonl`` export (newline included)."""
    return orjson.dumps(redact(record(row), fields), option=orjson.OPT_APPEND_NEWLINE)


def chat_line(row: RequestRow, fields: Collection[str] = ()) -> bytes | None:
    """One ``openai-chat`` dataset line, or ``None`` when the row cannot make one.

    Only completed chat requests whose messages were kept qualify (not failed ones,
    embeddings, or requests journaled with ``journal.redact``).
    """
    if row.endpoint != "chat" or row.state != "completed" or row.response is None:
        return None
    data = redact(record(row), fields)
    request = data["request"]
    if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
        return None
    answer = _answer(data["response"])
    if answer["content"] is None and "tool_calls" not in answer:
        return None  # nothing answered: no use as a training example
    line: dict[str, Any] = {"messages": [*request["messages"], answer]}
    if isinstance(request.get("tools"), list):
        line["tools"] = request["tools"]
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)


def _answer(response: Any) -> dict[str, Any]:
    """The assistant message of a chat.completion (its first choice)."""
    message: Any = response
    for key in ("choices", 0, "message"):
        if message == REDACTED:
            break
        if isinstance(key, int):
            message = message[0] if isinstance(message, list) and message else None
        else:
            message = message.get(key) if isinstance(message, dict) else None
    if message == REDACTED:  # the answer, or a part of the path to it, was redacted
        return {"role": "assistant", "content": REDACTED}
    if not isinstance(message, dict):
        return {"role": "assistant", "content": None}
    answer: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        answer["tool_calls"] = message["tool_calls"]
    return answer


def markdown_name(row: RequestRow) -> str:
    """``20261127-043442-req_….md``: pages sort by time in a file listing."""
    stamp = datetime.fromtimestamp(row.received_at, UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]', '_', row.rid)}.md"


def markdown_page(row: RequestRow, fields: Collection[str] = ()) -> str:
    """One conversation as Markdown: metadata table, messages, answer, attempts."""
    data = redact(record(row), fields)
    request, response = data["request"], data["response"]
    messages = request.get("messages") if isinstance(request, dict) else None
    out = [
        f"# {_title(messages) or 'Request ' + row.rid}",
        "",
        "| field | value |",
        "| --- | --- |",
    ]
    out += [f"| {key} | {_cell(value)} |" for key, value in _facts(row, data)]
    if isinstance(messages, list):
        out += ["", "## Messages"]
        for number, message in enumerate(messages, 1):
            role = message.get("role", "?") if isinstance(message, dict) else "?"
            out += ["", f"### {number}. {role}", "", _content(message)]
    elif messages is not None:
        out += ["", "## Messages", "", str(messages)]
    elif request is not None:
        out += ["", "## Request", "", _json_block(request)]
    else:
        out += ["", "_The request body was not kept (journal.redact)._"]
    out += _outcome(row, data["content_sent"], response)
    out += ["", "## Attempts", ""]
    if not row.attempts:  # still running, or cut off by a crash before its end was logged
        out.append("_None recorded: the request has not finished._")
    else:
        out += ["| # | target | outcome | seconds |", "| --- | --- | --- | --- |"]
        out += [
            f"| {n} | {_cell(target)} | {_cell(outcome)} | {seconds:.3f} |"
            for n, (target, outcome, seconds) in enumerate(row.attempts, 1)
        ]
    return "\n".join(out) + "\n"


def _outcome(row: RequestRow, sent: Any, response: Any) -> list[str]:
    if row.state == "completed":
        if isinstance(response, dict) and isinstance(response.get("choices"), list):
            return ["", "## Answer", "", _content(_answer(response))]
        if isinstance(response, dict) and isinstance(response.get("data"), list):
            return ["", "## Answer", "", f"_{len(response['data'])} embedding vector(s)._"]
        if response is None:
            return ["", "## Answer", "", "_The answer was not kept (journal.redact)._"]
        return ["", "## Answer", "", str(response)]
    out = []
    if sent:
        title = (
            "Received before the client left"
            if row.state == "client_gone"
            else ("Sent before the interruption")
        )
        out += ["", f"## {title}", "", str(sent)]
    if response is not None:
        out += ["", "## Error", "", _json_block(response)]
    return out


def _facts(row: RequestRow, data: dict[str, Any]) -> list[tuple[str, Any]]:
    facts: list[tuple[str, Any]] = [
        ("request", f"`{row.rid}`"),
        ("received", _iso(row.received_at)),
        ("route", row.route),
        ("model asked", row.model_asked),
        ("endpoint", row.endpoint),
        ("stream", "yes" if row.stream else "no"),
        ("state", row.state if row.status is None else f"{row.state} ({row.status})"),
    ]
    if row.provider:
        facts.append(("answered by", f"{row.provider}/{row.model or '?'}"))
    if row.finished_at is not None:
        facts.append(("latency", f"{row.finished_at - row.received_at:.3f} s"))
    if row.completion_id:
        facts.append(("completion", f"`{row.completion_id}`"))
    usage = data["usage"]
    if isinstance(usage, dict):
        facts.append(
            ("usage", ", ".join(f"{k} {v}" for k, v in usage.items() if isinstance(v, int | float)))
        )
    elif usage is not None:
        facts.append(("usage", usage))
    metadata = data["metadata"]
    if isinstance(metadata, dict):
        facts += [(f"metadata.{key}", value) for key, value in sorted(metadata.items())]
    elif metadata is not None:
        facts.append(("metadata", metadata))
    return facts


def _title(messages: Any) -> str:
    """The first line of the first user message, shortened."""
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role") == "user":
            text = _content(message).strip().splitlines()
            line = text[0] if text else ""
            return line if len(line) <= 72 else line[:71] + "…"
    return ""


def _content(message: Any) -> str:
    """A message's text; non-text parts as placeholders, tool calls as JSON."""
    if not isinstance(message, dict):
        return str(message)
    parts = (
        [f"_In reply to tool call `{message['tool_call_id']}`._"]
        if message.get("tool_call_id")
        else []
    )
    content = message.get("content")
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, dict):
            kind = part.get("type")
            parts.append(str(part.get("text", "")) if kind == "text" else f"_[{kind}]_")
        elif part is not None:
            parts.append(str(part))
    if message.get("tool_calls"):
        parts.append(_json_block(message["tool_calls"]))
    return "\n\n".join(parts) or "_(empty)_"


def _json_block(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    return f"```json\n{text}\n```"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def parse_when(text: str, now: float) -> float:
    """``--since``/``--until`` → unix seconds.

    Accepts a duration ago (``90m``, ``24h``, ``7d``, ``2w``), unix seconds (``1732680000``)
    or ISO 8601 (``2026-11-27``, ``2026-11-27T09:30``, ``…+01:00``; no offset means UTC).
    """
    if match := _AGO.match(text):
        return now - float(match.group(1)) * _AGO_UNIT[match.group(2)]
    if _UNIX.match(text):
        return float(text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"bad time {text!r}: expected a duration ago (24h, 7d), unix "
            "seconds or ISO 8601 (2026-11-27T09:30Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def iter_requests(
    store: JournalStore,
    *,
    since: float | None = None,
    until: float | None = None,
    state: str | None = None,
    route: str | None = None,
    page: int = 200,
) -> AsyncIterator[RequestRow]:
    """Every matching request, newest first, one page of ``page`` rows at a time."""
    before: str | None = None
    while True:
        rows = await store.list_requests(
            since=since, until=until, state=state, route=route, before=before, limit=page
        )
        for row in rows:
            yield row
        if len(rows) < page:
            return
        before = rows[-1].rid
