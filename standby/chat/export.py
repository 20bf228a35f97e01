"""A conversation written out: Markdown (the branch on show, to read or share) and JSON
(every branch, to keep or to move elsewhere).  Pure: ``ChatStore.export_*`` feeds it.

Markdown names the model (and provider) behind each answer and marks an answer that was
continued on another target after its stream broke, or one that never finished: a
transcript must not pass off a cut answer as a whole one.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from standby.chat.model import Message, Thread

FORMAT = "standby.chat"
VERSION = 1
_ROLE = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
_SOURCE = {"chat": "Standby chat", "chatgpt": "ChatGPT export", "claude": "Claude export"}
_STATE = {
    "streaming": "still arriving when exported",
    "queued": "queued, not answered yet",
    "failed": "failed: no answer",
    "stopped": "stopped before the end",
}


def _when(seconds: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):  # a time no calendar holds
        return "an unknown time"


def _heading(message: Message) -> str:
    heading = f"## {_ROLE.get(message.role, message.role.title())}"
    if message.model:
        via = f" via {message.provider}" if message.provider else ""
        heading += f" · {message.model}{via}"
    return heading


def _notes(message: Message) -> list[str]:
    notes = []
    if message.continued:
        notes.append("continued on another target after the stream broke")
    if message.state in _STATE:
        notes.append(_STATE[message.state])
    return notes


def markdown(thread: Thread) -> str:
    """The branch on show, one section per message."""
    conversation = thread.conversation
    lines = [
        f"# {conversation.title.strip() or 'Untitled conversation'}",
        "",
        f"*{_SOURCE.get(conversation.source, conversation.source)} · started "
        f"{_when(conversation.created_at)} · last message {_when(conversation.updated_at)}*",
    ]
    for message in thread.branch():
        lines += ["", _heading(message), ""]
        notes = _notes(message)
        if notes:
            lines += [f"*({'; '.join(notes)})*", ""]
        lines.append(message.content.rstrip() or "*(empty)*")
    return "\n".join(lines) + "\n"


MARKDOWN_SEPARATOR = "\n---\n\n"  # between conversations in one file


def json_record(thread: Thread) -> dict[str, Any]:
    """A conversation and all its messages (every branch), oldest message first."""
    return {
        **thread.conversation.as_dict(),
        "messages": [message.as_dict() for message in thread.messages],
    }


def json_head(exported_at: float) -> bytes:
    """The start of a JSON export; records follow, comma-separated, then ``JSON_TAIL``."""
    head = orjson.dumps({"format": FORMAT, "version": VERSION, "exported_at": exported_at})
    return head[:-1] + b',"conversations":['


JSON_TAIL = b"]}\n"


def json_document(threads: list[Thread], exported_at: float) -> bytes:
    """A whole JSON export at once (``ChatStore.export_json`` streams the same bytes)."""
    records = b",".join(orjson.dumps(json_record(thread)) for thread in threads)
    return json_head(exported_at) + records + JSON_TAIL
