"""ChatGPT and Claude exports built the way the vendors write them (as their formats are
documented in ``standby.importers.chatgpt`` and ``standby.importers.claude``), and
zipped like the files they send."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

ZERO_UUID = "00000000-0000-4000-8000-000000000000"  # a Claude root's parent


def gpt_message(
    node_id: str,
    role: str,
    *parts: Any,
    at: float | None = 1_700_000_000.0,
    content_type: str = "text",
    content: dict[str, Any] | None = None,
    model: str | None = None,
    hidden: bool = False,
    attachments: Sequence[dict[str, Any]] = (),
    status: str = "finished_successfully",
    recipient: str = "all",
    author_name: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if model:
        metadata["model_slug"] = model
    if hidden:
        metadata["is_visually_hidden_from_conversation"] = True
    if attachments:
        metadata["attachments"] = list(attachments)
    return {
        "id": node_id,
        "author": {"role": role, "name": author_name, "metadata": {}},
        "create_time": at,
        "update_time": None,
        "content": content or {"content_type": content_type, "parts": list(parts)},
        "status": status,
        "end_turn": True if role == "assistant" else None,
        "weight": 1.0,
        "metadata": metadata,
        "recipient": recipient,
        "channel": None,
    }


def gpt_conversation(
    conversation_id: str,
    title: str,
    nodes: Sequence[tuple[str, str | None, dict[str, Any] | None]],
    current: str | None,
    *,
    created: float = 1_700_000_000.0,
) -> dict[str, Any]:
    """``nodes``: (node id, parent id, message or None), in any order."""
    mapping: dict[str, Any] = {
        node_id: {"id": node_id, "message": message, "parent": parent, "children": []}
        for node_id, parent, message in nodes
    }
    for node_id, parent, _ in nodes:
        if parent in mapping:
            mapping[parent]["children"].append(node_id)
    return {
        "title": title,
        "create_time": created,
        "update_time": created + 600,
        "mapping": mapping,
        "moderation_results": [],
        "current_node": current,
        "plugin_ids": None,
        "conversation_id": conversation_id,
        "conversation_template_id": None,
        "gizmo_id": None,
        "is_archived": False,
        "safe_urls": [],
        "default_model_slug": "gpt-4o",
        "id": conversation_id,
    }


def claude_message(
    uuid: str,
    sender: str,
    text: str,
    *,
    at: str = "2025-03-01T10:00:00.000000Z",
    parent: str | None = None,
    content: list[dict[str, Any]] | None = None,
    attachments: Sequence[dict[str, Any]] = (),
    files: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "uuid": uuid,
        "text": text,
        "content": content
        if content is not None
        else [
            {
                "start_timestamp": at,
                "stop_timestamp": at,
                "type": "text",
                "text": text,
                "citations": [],
            }
        ],
        "sender": sender,
        "created_at": at,
        "updated_at": at,
        "attachments": list(attachments),
        "files": list(files),
    }
    if parent is not None:
        message["parent_message_uuid"] = parent
    return message


def claude_conversation(
    uuid: str,
    name: str,
    messages: Sequence[dict[str, Any]],
    *,
    current: str | None = None,
    created: str = "2025-03-01T09:59:00.000000Z",
) -> dict[str, Any]:
    conversation: dict[str, Any] = {
        "uuid": uuid,
        "name": name,
        "created_at": created,
        "updated_at": "2025-03-01T11:00:00.000000Z",
        "account": {"uuid": "acct-1"},
        "chat_messages": list(messages),
    }
    if current is not None:
        conversation["current_leaf_message_uuid"] = current
    return conversation


def write_export(
    path: Path, conversations: Any, *, member: str = "conversations.json", raw: bytes | None = None
) -> Path:
    """A zip file as the vendors send it: ``conversations.json`` beside other files."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, raw if raw is not None else orjson.dumps(conversations))
        archive.writestr("user.json", b'{"id": "user-1"}')
        archive.writestr("file-abc123-photo.png", b"\x89PNG fake")
    return path
