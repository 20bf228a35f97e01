"""The chat page's conversations as records: a conversation, its messages, and the tree
they make.

Messages form a tree, not a list: editing a question and sending it again, or asking for
another answer, adds a sibling of the message it replaces, and imported exports keep
their branches the same way.  The conversation remembers which leaf is on show
(``current_message_id``); a *branch* is the path from the root to a leaf.  Everything
here is pure: ``ChatStore`` makes these records, the page and the exports read them.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Role = Literal["system", "user", "assistant", "tool"]
# queued: waiting for a target (deferred); streaming: arriving; stopped: by the user or
# cut with nothing to continue on; failed: no answer at all
State = Literal["done", "streaming", "queued", "failed", "stopped"]
Source = Literal["chat", "chatgpt", "claude"]  # made on the page, or imported
ROLES: tuple[Role, ...] = get_args(Role)
STATES: tuple[State, ...] = get_args(State)
SOURCES: tuple[Source, ...] = get_args(Source)

Cursor = tuple[float, str]  # (updated_at, id) of the last conversation of a page


def new_id(prefix: str) -> str:
    """A fresh id that sorts by creation time (``conv_…``, ``msg_…``)."""
    return f"{prefix}_{time.time_ns() // 1000:014x}{secrets.token_hex(4)}"


def derived_id(prefix: str, *parts: str | None) -> str:
    """An id that is the same every time for the same parts: an imported conversation's
    from (source, its id in the export, owner), so a second import finds it."""
    key = "\0".join("\1" if part is None else part for part in parts)
    return f"{prefix}_{hashlib.blake2b(key.encode(), digest_size=11).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    owner: str | None  # the client's name; None on a single-user gateway
    title: str
    created_at: float
    updated_at: float
    source: Source = "chat"
    source_id: str | None = None  # the conversation's id in the export it came from
    current_message_id: str | None = None  # the leaf of the branch on show

    @property
    def cursor(self) -> Cursor:
        """Where the next page of a listing starts (``ChatStore.conversations(before=)``)."""
        return (self.updated_at, self.id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "title": self.title,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "source": self.source,
            "source_id": self.source_id,
            "current_message_id": self.current_message_id,
        }


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    conversation_id: str
    parent_id: str | None  # None: a root (a conversation may have several)
    role: Role
    content: str
    created_at: float
    model: str | None = None  # the model that answered
    provider: str | None = None
    continued: bool = False  # continued on another target after its stream broke
    state: State = "done"
    request_id: str | None = None  # the journal's request
    extra: dict[str, Any] | None = None  # attachments, non-text parts, export metadata

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parent_id": self.parent_id,
            "role": self.role,
            "content": self.content,
            "created_at": self.created_at,
            "model": self.model,
            "provider": self.provider,
            "continued": self.continued,
            "state": self.state,
            "request_id": self.request_id,
            "extra": self.extra,
        }


def _by_time(message: Message) -> tuple[float, str]:
    return (message.created_at, message.id)


@dataclass(frozen=True, slots=True)
class Thread:
    """A conversation with all its messages (every branch), oldest first."""

    conversation: Conversation
    messages: tuple[Message, ...]
    _by_id: dict[str, Message] = field(init=False, repr=False, compare=False)
    _children: dict[str | None, list[Message]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {message.id: message for message in self.messages}
        children: dict[str | None, list[Message]] = {}
        for message in sorted(self.messages, key=_by_time):
            parent = message.parent_id if message.parent_id in by_id else None
            children.setdefault(parent, []).append(message)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_children", children)

    def message(self, message_id: str) -> Message | None:
        return self._by_id.get(message_id)

    def children(self, parent_id: str | None) -> tuple[Message, ...]:
        """The messages answering ``parent_id`` (None: the roots), oldest first."""
        return tuple(self._children.get(parent_id, ()))

    def siblings(self, message_id: str) -> tuple[Message, ...]:
        """The message and its alternatives (same parent), oldest first: the page's
        "2 / 3" between versions of an answer or of an edited question."""
        message = self._by_id.get(message_id)
        if message is None:
            return ()
        parent = message.parent_id if message.parent_id in self._by_id else None
        return self.children(parent)

    def latest_leaf(self, message_id: str) -> Message | None:
        """The leaf reached from ``message_id`` by always taking the newest answer:
        where to go when the user switches to another version of a message."""
        message = self._by_id.get(message_id)
        while message is not None:
            below = self._children.get(message.id)
            if not below:
                return message
            message = below[-1]
        return None

    def branch(self, leaf_id: str | None = None) -> tuple[Message, ...]:
        """The messages from the root to ``leaf_id`` (default: the current leaf), in
        order; empty when the leaf is not in this conversation."""
        if leaf_id is None:
            leaf_id = self.conversation.current_message_id
        if leaf_id is None and self.messages:  # never set: the newest message
            leaf_id = max(self.messages, key=_by_time).id
        return branch(self._by_id, leaf_id)


def branch(messages: dict[str, Message], leaf_id: str | None) -> tuple[Message, ...]:
    """The path from the root to ``leaf_id`` through ``messages`` (id → message)."""
    path: list[Message] = []
    seen: set[str] = set()
    current = messages.get(leaf_id) if leaf_id is not None else None
    while current is not None and current.id not in seen:  # a loop cannot trap the walk
        seen.add(current.id)
        path.append(current)
        current = messages.get(current.parent_id) if current.parent_id is not None else None
    path.reverse()
    return tuple(path)
