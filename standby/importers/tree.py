"""An exported conversation as the importers read it, and the chat thread made from it.

Each importer turns its vendor's format into ``Exported``: the conversation and every
node of its tree, in the export's order, each either a message or skipped with a reason
(a placeholder node, a hidden system prompt, an empty message).  ``to_thread`` makes the
chat's records from it, the same way for every vendor:

* a kept message hangs under its nearest kept ancestor, so skipping a node never cuts
  its subtree off; branches (regenerated answers, edited questions) stay siblings;
* the current leaf is the export's (or, if that was skipped, its nearest kept
  ancestor); without one, the newest leaf;
* ids are derived from the export's ids and the owner, so the same export imported
  twice by one owner gives the same records (and nothing new), and two owners' imports
  never collide;
* a message without a time takes its parent's, so siblings keep the export's order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from standby.chat.model import Conversation, Message, Role, Source, State, Thread, derived_id


@dataclass(frozen=True, slots=True)
class Node:
    id: str  # the export's id
    parent: str | None  # the export's id of its parent (None: a root)
    role: Role = "user"
    content: str = ""
    created_at: float | None = None
    model: str | None = None
    state: State = "done"
    extra: dict[str, Any] | None = None
    skipped: str | None = None  # why it is left out; None: kept


@dataclass(frozen=True, slots=True)
class Exported:
    source: Source
    id: str  # the conversation's id in the export
    title: str
    created_at: float | None
    updated_at: float | None
    nodes: tuple[Node, ...]  # in the export's order
    current: str | None  # the export's current leaf; None: unknown


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something of an export that was not imported, and why."""

    conversation: str  # its title (or id)
    item: str  # the node's id; "" for a whole conversation
    reason: str


@dataclass(frozen=True, slots=True)
class Parsed:
    conversations: list[Exported] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # unreadable conversations


def parse_each(raws: list[Any], parse: Callable[[Any], Exported], title_key: str) -> Parsed:
    """Each conversation of an export through ``parse``; one that raises ``ValueError``
    is reported as skipped, under its title (``title_key``) or its place in the list."""
    parsed = Parsed()
    for n, raw in enumerate(raws):
        try:
            parsed.conversations.append(parse(raw))
        except ValueError as exc:
            title = raw.get(title_key) if isinstance(raw, dict) else None
            name = title if isinstance(title, str) and title else f"conversation #{n + 1}"
            parsed.skipped.append(Skipped(name, "", str(exc)))
    return parsed


def conversation_id(source: Source, export_id: str, owner: str | None) -> str:
    return derived_id("conv", source, export_id, owner)


def _anchors(nodes: dict[str, Node]) -> dict[str, str | None]:
    """Node id → its nearest kept ancestor (None: none, it is a root).  A parent that is
    not in the export makes a root; a loop in the parents is cut where it closes."""
    anchors: dict[str, str | None] = {}
    for start in nodes:
        walked: list[str] = []
        seen = {start}
        parent = nodes[start].parent
        found: str | None = None
        while parent is not None and parent in nodes and parent not in seen:
            if parent in anchors and nodes[parent].skipped is not None:
                found = anchors[parent]  # a skipped node's anchor is known already
                break
            if nodes[parent].skipped is None:
                found = parent
                break
            walked.append(parent)
            seen.add(parent)
            parent = nodes[parent].parent
        anchors[start] = found
        for skipped in walked:
            anchors.setdefault(skipped, found)
    return anchors


def to_thread(exported: Exported, owner: str | None) -> Thread:
    """The chat's conversation and messages for ``exported``, owned by ``owner``."""
    conv_id = conversation_id(exported.source, exported.id, owner)
    nodes: dict[str, Node] = {}
    for node in exported.nodes:
        nodes.setdefault(node.id, node)  # a repeated id: the first one counts
    anchors = _anchors(nodes)
    kept = [node for node in nodes.values() if node.skipped is None]
    ids = {node.id: derived_id("msg", conv_id, node.id) for node in kept}

    start = exported.created_at
    times: dict[str, float] = {}

    def when(node_id: str) -> float:
        chain: list[str] = []
        walked: set[str] = set()  # a loop of parents ends the walk
        current: str | None = node_id
        while current is not None and current not in times and current not in walked:
            chain.append(current)
            walked.add(current)
            if nodes[current].created_at is not None:
                break
            current = anchors[current]
        inherited = start or 0.0
        if current is not None and current in times:
            inherited = times[current]
        for name in reversed(chain):
            own = nodes[name].created_at
            inherited = own if own is not None else inherited
            times[name] = inherited
        return times[node_id]

    messages = tuple(
        Message(
            id=ids[node.id],
            conversation_id=conv_id,
            parent_id=ids[anchor] if (anchor := anchors[node.id]) is not None else None,
            role=node.role,
            content=node.content,
            created_at=when(node.id),
            model=node.model,
            state=node.state,
            extra=node.extra,
        )
        for node in kept
    )
    current = _current(exported.current, nodes, anchors, messages, ids)
    first = min((m.created_at for m in messages), default=0.0)
    last = max((m.created_at for m in messages), default=first)
    created = exported.created_at if exported.created_at is not None else first
    conversation = Conversation(
        id=conv_id,
        owner=owner,
        title=exported.title,
        created_at=created,
        updated_at=exported.updated_at if exported.updated_at is not None else last,
        source=exported.source,
        source_id=exported.id,
        current_message_id=current,
    )
    return Thread(conversation, messages)


def _current(
    leaf: str | None,
    nodes: dict[str, Node],
    anchors: dict[str, str | None],
    messages: tuple[Message, ...],
    ids: dict[str, str],
) -> str | None:
    if leaf is not None and leaf in nodes:
        kept = leaf if nodes[leaf].skipped is None else anchors[leaf]
        if kept is not None:
            return ids[kept]
    parents = {m.parent_id for m in messages}
    leaves = [(m.created_at, n, m.id) for n, m in enumerate(messages) if m.id not in parents]
    return max(leaves)[2] if leaves else None
