"""The Claude data export (Settings → Privacy → Export data): a zip file whose
``conversations.json`` lists every conversation.

A conversation has ``uuid``, ``name`` (its title), ``created_at`` and ``updated_at``
(ISO 8601) and ``chat_messages`` in order.  A message has ``uuid``, ``sender``
(``human`` or ``assistant``), ``text``, ``content`` (blocks: ``text``, and ``thinking``,
``tool_use``, ``tool_result`` …), ``created_at``, ``attachments`` (``file_name``,
``file_type``, ``file_size``, ``extracted_content``: the text Claude read) and ``files``
(``file_name``: uploaded images and documents).  Newer exports give each message its
``parent_message_uuid`` (a root's parent is a zero uuid not in the conversation) and the
conversation a ``current_leaf_message_uuid``; the messages then form a tree whose other
branches are kept as siblings.  Without parents, each message answers the one before.

Left out, with the reason reported: messages from another sender and empty ones.  A
block that is not text becomes a placeholder (``[tool: web_search]``); thinking is not
shown (its length is kept in ``extra``); attachments and files are named.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from standby.chat.model import Role
from standby.chat.store import ChatStore
from standby.importers.archive import (
    DEFAULT_LIMITS,
    ArchiveLimits,
    conversation_list,
    read_member,
)
from standby.importers.ingest import ImportReport, ingest
from standby.importers.tree import Exported, Node, Parsed, parse_each

MEMBER = "conversations.json"
_ROLES: dict[str, Role] = {"human": "user", "assistant": "assistant"}
_IMAGES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".heic")


def _seconds(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _objects(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _blocks(message: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """The text of the content blocks, and what the other blocks were."""
    pieces: list[str] = []
    others: list[dict[str, Any]] = []
    for block in _objects(message.get("content")):
        kind = str(block.get("type") or "block")
        name = block.get("name")
        if kind == "thinking":
            others.append({"type": kind, "chars": len(str(block.get("thinking") or ""))})
        elif kind in ("tool_use", "tool_result"):
            label = "tool" if kind == "tool_use" else "tool result"
            pieces.append(f"[{label}: {name}]" if isinstance(name, str) else f"[{label}]")
            others.append({"type": kind, "name": name})
        elif kind == "text" or isinstance(block.get("text"), str):
            pieces.append(str(block.get("text") or ""))
        else:
            pieces.append(f"[{kind}]")
            others.append({"type": kind})
    return pieces, others


def _file_label(name: str, kind: Any) -> str:
    image = kind == "image" or PurePosixPath(name).suffix.lower() in _IMAGES
    return f"[{'image' if image else 'file'}: {name}]"


def parse_message(message: Any, node_id: str, parent: str | None) -> Node:
    """One of ``chat_messages``: a message kept, or skipped with the reason."""
    if not isinstance(message, dict):
        return Node(node_id, parent, skipped="not a message object")
    sender = message.get("sender")
    role = _ROLES.get(sender) if isinstance(sender, str) else None
    if role is None:
        return Node(node_id, parent, skipped=f"a message from {sender!r}, not human or assistant")
    pieces, others = _blocks(message)
    if not "".join(pieces).strip() and isinstance(message.get("text"), str):
        pieces = [message["text"]]  # older exports: the text only
    attachments = _objects(message.get("attachments"))
    files = _objects(message.get("files"))
    named = [f"[attachment: {a.get('file_name') or 'unnamed'}]" for a in attachments]
    named += [_file_label(str(f.get("file_name") or "unnamed"), f.get("file_kind")) for f in files]
    text = "\n".join(piece for piece in ["\n".join(pieces).strip("\n"), *named] if piece)
    if not text.strip():
        return Node(node_id, parent, skipped=f"an empty {role} message")
    extra: dict[str, Any] = {}
    if others:
        extra["parts"] = others
    if attachments:
        extra["attachments"] = attachments
    if files:
        extra["files"] = files
    return Node(
        id=node_id,
        parent=parent,
        role=role,
        content=text,
        created_at=_seconds(message.get("created_at")),
        extra=extra or None,
    )


def parse_conversation(raw: Any) -> Exported:
    """One conversation of ``conversations.json``; ``ValueError`` when it has no uuid."""
    if not isinstance(raw, dict):
        raise ValueError("not a conversation object")
    export_id = raw.get("uuid")
    if not isinstance(export_id, str) or not export_id:
        raise ValueError("a conversation without a uuid")
    found_messages = raw.get("chat_messages")
    messages: list[Any] = found_messages if isinstance(found_messages, list) else []
    tree = any(isinstance(m, dict) and "parent_message_uuid" in m for m in messages)
    nodes: list[Node] = []
    previous: str | None = None
    for n, message in enumerate(messages):
        found = message.get("uuid") if isinstance(message, dict) else None
        node_id = found if isinstance(found, str) and found else f"#{n}"
        if tree:
            parent = message.get("parent_message_uuid") if isinstance(message, dict) else None
            parent = parent if isinstance(parent, str) else None
        else:
            parent = previous
        nodes.append(parse_message(message, node_id, parent))
        previous = node_id
    title = raw.get("name")
    current = raw.get("current_leaf_message_uuid")
    return Exported(
        source="claude",
        id=export_id,
        title=title.strip() if isinstance(title, str) else "",
        created_at=_seconds(raw.get("created_at")),
        updated_at=_seconds(raw.get("updated_at")),
        nodes=tuple(nodes),
        current=current if isinstance(current, str) else None,
    )


def parse(data: bytes, where: str = MEMBER) -> Parsed:
    """Every conversation of a ``conversations.json``; the unreadable ones are reported."""
    return parse_each(conversation_list(data, where), parse_conversation, "name")


async def import_export(
    store: ChatStore, path: Path, *, owner: str | None, limits: ArchiveLimits = DEFAULT_LIMITS
) -> ImportReport:
    """Import the Claude export at ``path`` for ``owner``."""
    data = read_member(path, MEMBER, limits)
    return await ingest(store, parse(data, f"{path}: {MEMBER}"), "claude", owner)
