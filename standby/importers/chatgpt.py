"""The ChatGPT data export (Settings → Data controls → Export data): a zip file whose
``conversations.json`` lists every conversation.

A conversation is a tree: ``mapping`` holds its nodes (node id → ``{id, message,
parent, children}``) and ``current_node`` the leaf on show; regenerated answers and
edited questions are other children of the same node.  A message has ``author.role``
(user, assistant, system, tool), ``create_time`` (unix seconds, may be null),
``content`` (by ``content_type``: ``text`` and ``multimodal_text`` carry ``parts``,
strings mixed with objects such as ``image_asset_pointer``; ``code``,
``execution_output`` and ``system_error`` a ``text``; ``tether_browsing_display`` a
``result``; ``tether_quote`` a quoted ``text``), ``metadata`` (``model_slug``,
``attachments``, ``is_visually_hidden_from_conversation``), ``status`` and
``recipient`` (not ``all``: a call to a tool).

Left out, with the reason reported: placeholder nodes without a message, hidden
messages (the system prompt), the user's custom instructions
(``user_editable_context``), reasoning (``thoughts``, ``reasoning_recap``) and empty
messages.  Their children hang under the nearest message kept.  A part that is not text
becomes a short placeholder (``[image: photo.png]``) with its metadata in ``extra``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from standby.chat.model import ROLES, Role, State
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
_REASONING = ("thoughts", "reasoning_recap")
_STOPPED = ("in_progress", "finished_partial_completion")  # the answer did not finish
_PART_KEYS = ("content_type", "asset_pointer", "size_bytes", "width", "height", "mime_type")


def _object(value: Any) -> dict[str, Any]:
    """A JSON object of the export, or an empty one where it has something else."""
    return value if isinstance(value, dict) else {}


def _seconds(value: Any) -> float | None:
    """Unix seconds, where they are a time (1970 to the year 5000)."""
    return float(value) if isinstance(value, int | float) and 0 < value < 1e11 else None


def _asset_name(pointer: str, attachments: dict[str, str]) -> str:
    """``sediment://file_00ab`` or ``file-service://file-AbC`` → the attachment's name
    where the message names it, else the file id."""
    file_id = pointer.rsplit("/", 1)[-1]
    return attachments.get(file_id, file_id)


def _part(part: Any, attachments: dict[str, str], named: set[str]) -> tuple[str, Any]:
    """One entry of ``parts``: its text, and its metadata when it is not text."""
    if isinstance(part, str):
        return part, None
    if not isinstance(part, dict):
        return "", None
    kind = str(part.get("content_type") or "part")
    if isinstance(part.get("text"), str):  # audio_transcription and the like
        return part["text"], None
    meta = {key: part[key] for key in _PART_KEYS if key in part}
    pointer = part.get("asset_pointer")
    if isinstance(pointer, str):
        name = _asset_name(pointer, attachments)
        named.add(pointer.rsplit("/", 1)[-1])
        meta["name"] = name
        label = "image" if kind == "image_asset_pointer" else kind.removesuffix("_asset_pointer")
        return f"[{label}: {name}]", meta
    return f"[{kind}]", meta


def _text(content: dict[str, Any], attachments: dict[str, str]) -> tuple[str, list[Any]]:
    """A message's text by its content type, and the metadata of its non-text parts."""
    kind = content.get("content_type")
    named: set[str] = set()
    parts_meta: list[Any] = []
    if kind == "code":
        language = content.get("language")
        fence = "" if language in (None, "unknown") else str(language)
        text = f"```{fence}\n{content.get('text') or ''}\n```"
    elif kind == "tether_browsing_display":
        text = str(content.get("result") or content.get("summary") or "") or "[browsing]"
    elif kind == "tether_quote":
        source = " ".join(str(content.get(k) or "") for k in ("title", "url")).strip()
        quoted = "\n".join(f"> {line}" for line in str(content.get("text") or "").splitlines())
        text = f"{quoted}\n\n— {source}" if source else quoted
    elif kind == "system_error":
        text = f"[error: {content.get('name') or 'system'}: {content.get('text') or ''}]"
    elif isinstance(content.get("parts"), list):
        pieces = []
        for part in content["parts"]:
            piece, meta = _part(part, attachments, named)
            if piece:
                pieces.append(piece)
            if meta is not None:
                parts_meta.append(meta)
        text = "\n".join(pieces)
    elif isinstance(content.get("text"), str):  # execution_output and others
        text = content["text"]
    else:
        text = f"[{kind or 'content'}]"
    unnamed = [
        f"[attachment: {name}]" for file_id, name in attachments.items() if file_id not in named
    ]
    return "\n".join(piece for piece in (text, *unnamed) if piece), parts_meta


def _skip(node_id: str, parent: str | None, reason: str) -> Node:
    return Node(node_id, parent, skipped=reason)


def parse_node(node_id: str, raw: Any, default_model: str | None) -> Node:
    """One node of ``mapping``: a message kept, or skipped with the reason."""
    node = _object(raw)
    parent = node.get("parent") if isinstance(node.get("parent"), str) else None
    message = node.get("message")
    if not isinstance(message, dict):
        return _skip(node_id, parent, "a placeholder node without a message")
    author = _object(message.get("author"))
    role = author.get("role")
    metadata = _object(message.get("metadata"))
    content = _object(message.get("content"))
    kind = content.get("content_type")
    if role not in ROLES:
        return _skip(node_id, parent, f"a message from {role!r}, not a chat role")
    if metadata.get("is_visually_hidden_from_conversation"):
        return _skip(node_id, parent, f"a hidden {role} message")
    if kind == "user_editable_context" or metadata.get("is_user_system_message"):
        return _skip(node_id, parent, "the custom instructions")
    if kind in _REASONING:
        return _skip(node_id, parent, f"the model's reasoning ({kind})")
    attachments = {
        str(a.get("id") or a.get("name")): str(a.get("name") or a.get("id"))
        for a in metadata.get("attachments") or []
        if isinstance(a, dict) and (a.get("id") or a.get("name"))
    }
    text, parts = _text(content, attachments)
    if not text.strip():
        return _skip(node_id, parent, f"an empty {role} message")
    extra: dict[str, Any] = {}
    if kind not in (None, "text"):
        extra["content_type"] = kind
    if parts:
        extra["parts"] = parts
    if attachments:
        extra["attachments"] = [a for a in metadata.get("attachments") or [] if isinstance(a, dict)]
    recipient = message.get("recipient")
    if isinstance(recipient, str) and recipient != "all":
        extra["recipient"] = recipient  # a call to a tool (python, browser, …)
    if role == "tool" and isinstance(author.get("name"), str):
        extra["tool"] = author["name"]
    model = metadata.get("model_slug") if isinstance(metadata.get("model_slug"), str) else None
    typed_role: Role = role
    state: State = "stopped" if message.get("status") in _STOPPED else "done"
    return Node(
        id=node_id,
        parent=parent,
        role=typed_role,
        content=text,
        created_at=_seconds(message.get("create_time")),
        model=(model or default_model) if role == "assistant" else None,
        state=state,
        extra=extra or None,
    )


def parse_conversation(raw: Any) -> Exported:
    """One conversation of ``conversations.json``; ``ValueError`` when it has no id or
    no ``mapping``."""
    if not isinstance(raw, dict):
        raise ValueError("not a conversation object")
    export_id = raw.get("conversation_id") or raw.get("id")
    mapping = raw.get("mapping")
    if not isinstance(export_id, str) or not export_id:
        raise ValueError("a conversation without an id")
    if not isinstance(mapping, dict):
        raise ValueError("a conversation without a mapping")
    default_model = raw.get("default_model_slug")
    default = default_model if isinstance(default_model, str) else None
    nodes = tuple(parse_node(str(key), value, default) for key, value in mapping.items())
    current = raw.get("current_node")
    title = raw.get("title")
    return Exported(
        source="chatgpt",
        id=export_id,
        title=title.strip() if isinstance(title, str) else "",
        created_at=_seconds(raw.get("create_time")),
        updated_at=_seconds(raw.get("update_time")),
        nodes=nodes,
        current=current if isinstance(current, str) else None,
    )


def parse(data: bytes, where: str = MEMBER) -> Parsed:
    """Every conversation of a ``conversations.json``; the unreadable ones are reported."""
    return parse_each(conversation_list(data, where), parse_conversation, "title")


async def import_export(
    store: ChatStore, path: Path, *, owner: str | None, limits: ArchiveLimits = DEFAULT_LIMITS
) -> ImportReport:
    """Import the ChatGPT export at ``path`` for ``owner``."""
    data = read_member(path, MEMBER, limits)
    return await ingest(store, parse(data, f"{path}: {MEMBER}"), "chatgpt", owner)
