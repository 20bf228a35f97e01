"""The chat page's conversations in the journal's database (SQLite or PostgreSQL).

Every call takes the owner first: the client's name, whose conversations alone it sees
and changes; ``None`` is the single-user gateway or the admin, who sees them all.  A
conversation of another client is "not found", never "forbidden", so its existence
does not leak.  A write and its search-index rows (``standby.chat.search``) go in one
transaction.  Imports write whole trees in batches (``add_threads``), idempotently:
their ids are derived from the export's.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from standby.chat import export
from standby.chat.fts5 import FTS5Index
from standby.chat.model import (
    ROLES,
    STATES,
    Conversation,
    Cursor,
    Message,
    Role,
    State,
    Thread,
    new_id,
)
from standby.chat.search import Hit, SearchIndex, parse_query
from standby.chat.tsvector import TsvectorIndex
from standby.errors import ChatNotFound
from standby.journal.schema import chat_messages, conversations

_PAGE = 100  # conversations per query when exporting all of them
_IN_CHUNK = 500  # ids per IN list


@dataclass(frozen=True, slots=True)
class Stored:
    """What ``add_threads`` did with one thread."""

    created: bool  # the conversation was new
    messages: int  # messages added (0: it was all there)


def _visible(owner: str | None) -> sa.ColumnElement[bool]:
    return sa.true() if owner is None else conversations.c.owner == owner


def _conversation(row: Row[Any]) -> Conversation:
    return Conversation(
        id=row.id,
        owner=row.owner,
        title=row.title,
        created_at=row.created_at,
        updated_at=row.updated_at,
        source=row.source,
        source_id=row.source_id,
        current_message_id=row.current_message_id,
    )


def _message(row: Row[Any]) -> Message:
    return Message(
        id=row.id,
        conversation_id=row.conversation_id,
        parent_id=row.parent_id,
        role=row.role,
        content=row.content,
        created_at=row.created_at,
        model=row.model,
        provider=row.provider,
        continued=bool(row.continued),
        state=row.state,
        request_id=row.request_id,
        extra=None if row.extra_json is None else orjson.loads(row.extra_json),
    )


def _conversation_row(c: Conversation) -> dict[str, Any]:
    return c.as_dict()


def _message_row(m: Message, owner: str | None) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "owner": owner,
        "parent_id": m.parent_id,
        "role": m.role,
        "content": m.content,
        "model": m.model,
        "provider": m.provider,
        "continued": m.continued,
        "state": m.state,
        "request_id": m.request_id,
        "created_at": m.created_at,
        "extra_json": None if m.extra is None else orjson.dumps(m.extra).decode(),
    }


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]


class ChatStore:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        postgres = engine.dialect.name == "postgresql"
        self.index: SearchIndex = TsvectorIndex() if postgres else FTS5Index()

    def __repr__(self) -> str:
        return f"<ChatStore {self.engine.dialect.name}>"

    # -- conversations ---------------------------------------------------------------

    async def create(self, owner: str | None, *, title: str = "") -> Conversation:
        """A new, empty conversation of ``owner``."""
        now = self.clock()
        made = Conversation(new_id("conv"), owner, title, now, now)
        async with self.engine.begin() as conn:
            await conn.execute(conversations.insert(), [_conversation_row(made)])
            await self.index.add_conversations(conn, [made])
        return made

    async def conversations(
        self, owner: str | None, *, limit: int = 50, before: Cursor | None = None
    ) -> list[Conversation]:
        """``owner``'s conversations, the most recently active first; the next page
        starts ``before`` the last one's ``cursor``."""
        query = sa.select(conversations).where(_visible(owner))
        if before is not None:
            at, last = before
            query = query.where(
                sa.or_(
                    conversations.c.updated_at < at,
                    sa.and_(conversations.c.updated_at == at, conversations.c.id < last),
                )
            )
        query = query.order_by(conversations.c.updated_at.desc(), conversations.c.id.desc())
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.limit(max(0, limit)))
            return [_conversation(row) for row in rows]

    async def get(self, owner: str | None, conversation_id: str) -> Thread | None:
        """The conversation with all its messages (every branch); None when it is not
        there or not ``owner``'s."""
        async with self.engine.connect() as conn:
            found = await self._threads(conn, owner, [conversation_id])
        return found[0] if found else None

    async def branch(
        self, owner: str | None, conversation_id: str, leaf_id: str | None = None
    ) -> tuple[Message, ...]:
        """The messages from the root to ``leaf_id`` (default: the current leaf)."""
        thread = await self.get(owner, conversation_id)
        if thread is None:
            raise ChatNotFound(f"no conversation {conversation_id}")
        path = thread.branch(leaf_id)
        if leaf_id is not None and not path:
            raise ChatNotFound(f"no message {leaf_id} in conversation {conversation_id}")
        return path

    async def rename(self, owner: str | None, conversation_id: str, title: str) -> bool:
        """False when the conversation is not there (or not ``owner``'s)."""
        async with self.engine.begin() as conn:
            found = await self._conversation_rows(conn, owner, [conversation_id])
            if not found:
                return False
            await conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(title=title)
            )
            await self.index.rename(conn, found[0], title)
        return True

    async def delete(self, owner: str | None, conversation_id: str) -> bool:
        """Delete the conversation and all its messages; False when it is not there."""
        async with self.engine.begin() as conn:
            found = await self._conversation_rows(conn, owner, [conversation_id])
            if not found:
                return False
            rows = await conn.execute(
                sa.select(chat_messages.c.id, chat_messages.c.created_at).where(
                    chat_messages.c.conversation_id == conversation_id
                )
            )
            await self.index.remove(conn, found[0], [(row.id, row.created_at) for row in rows])
            await conn.execute(
                chat_messages.delete().where(chat_messages.c.conversation_id == conversation_id)
            )
            await conn.execute(conversations.delete().where(conversations.c.id == conversation_id))
        return True

    async def set_current(self, owner: str | None, conversation_id: str, message_id: str) -> None:
        """Show the branch ending at ``message_id`` (the user switched versions)."""
        async with self.engine.begin() as conn:
            await self._owned(conn, owner, conversation_id)
            await self._in_conversation(conn, conversation_id, message_id)
            await conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(current_message_id=message_id)
            )

    # -- messages --------------------------------------------------------------------

    async def add_message(
        self,
        owner: str | None,
        conversation_id: str,
        *,
        role: Role,
        content: str = "",
        parent_id: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        continued: bool = False,
        state: State = "done",
        request_id: str | None = None,
        extra: dict[str, Any] | None = None,
        current: bool = True,
    ) -> Message:
        """Add a message under ``parent_id`` (None: a root).  A second child of the same
        parent is an alternative: an edited question, another answer.  With
        ``current`` (the default) its branch becomes the one on show."""
        if role not in ROLES or state not in STATES:
            raise ValueError(f"role {role!r} or state {state!r} is not one of the chat's")
        async with self.engine.begin() as conn:
            found = await self._owned(conn, owner, conversation_id)
            if parent_id is not None:
                await self._in_conversation(conn, conversation_id, parent_id)
            now = self.clock()
            message = Message(
                id=new_id("msg"),
                conversation_id=conversation_id,
                parent_id=parent_id,
                role=role,
                content=content,
                created_at=now,
                model=model,
                provider=provider,
                continued=continued,
                state=state,
                request_id=request_id,
                extra=extra,
            )
            await conn.execute(chat_messages.insert(), [_message_row(message, found.owner)])
            await self.index.add_messages(conn, [(found.owner, message)])
            touched: dict[str, Any] = {"updated_at": now}
            if current:
                touched["current_message_id"] = message.id
            await conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(**touched)
            )
        return message

    async def update_message(
        self,
        owner: str | None,
        message_id: str,
        *,
        content: str | None = None,
        state: State | None = None,
        model: str | None = None,
        provider: str | None = None,
        continued: bool | None = None,
        request_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Message:
        """Change what is given (an answer as it streams: its text so far, then its
        final state, the model that answered, whether it was continued)."""
        if state is not None and state not in STATES:
            raise ValueError(f"state {state!r} is not one of the chat's")
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("content", content),
                ("state", state),
                ("model", model),
                ("provider", provider),
                ("continued", continued),
                ("request_id", request_id),
                ("extra", extra),
            )
            if value is not None
        }
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(chat_messages)
                    .join(conversations, conversations.c.id == chat_messages.c.conversation_id)
                    .where(chat_messages.c.id == message_id, _visible(owner))
                )
            ).first()
            if row is None:
                raise ChatNotFound(f"no message {message_id}")
            updated = replace(_message(row), **changes)
            if changes:
                values = _message_row(updated, row.owner)
                await conn.execute(
                    chat_messages.update()
                    .where(chat_messages.c.id == message_id)
                    .values({name: values[name] for name in _columns(changes)})
                )
                if content is not None:
                    await self.index.update_message(conn, updated)
                await conn.execute(
                    conversations.update()
                    .where(conversations.c.id == updated.conversation_id)
                    .values(updated_at=self.clock())
                )
        return updated

    # -- search and export -----------------------------------------------------------

    async def search(self, owner: str | None, query: str, limit: int = 20) -> list[Hit]:
        """``owner``'s conversations matching ``query`` (words, "phrases", a last
        word*), best first, each with its best-matching message and a snippet."""
        terms = parse_query(query)
        if not terms or limit <= 0:
            return []
        async with self.engine.connect() as conn:
            found = await self.index.search(conn, owner, terms, limit)
            ids = [hit.conversation_id for hit in found]
            rows = await self._conversation_rows(conn, owner, ids)
        by_id = {row.id: row for row in rows}
        return [
            Hit(by_id[hit.conversation_id], hit.message_id, hit.snippet, hit.score)
            for hit in found
            if hit.conversation_id in by_id
        ]

    async def export_markdown(
        self, owner: str | None, conversation_id: str | None = None
    ) -> AsyncIterator[str]:
        """The branch on show of one conversation, or of all ``owner``'s (newest
        first, separated by a rule), in pieces."""
        first = True
        async for thread in self._exported(owner, conversation_id):
            yield ("" if first else export.MARKDOWN_SEPARATOR) + export.markdown(thread)
            first = False

    async def export_json(
        self, owner: str | None, conversation_id: str | None = None
    ) -> AsyncIterator[bytes]:
        """One conversation, or all ``owner``'s, with every branch, as one JSON
        document (``standby.chat`` version 1), in pieces."""
        yield export.json_head(self.clock())
        first = True
        async for thread in self._exported(owner, conversation_id):
            yield (b"" if first else b",") + orjson.dumps(export.json_record(thread))
            first = False
        yield export.JSON_TAIL

    async def _exported(
        self, owner: str | None, conversation_id: str | None
    ) -> AsyncIterator[Thread]:
        if conversation_id is not None:
            thread = await self.get(owner, conversation_id)
            if thread is None:
                raise ChatNotFound(f"no conversation {conversation_id}")
            yield thread
            return
        before: Cursor | None = None
        while page := await self.conversations(owner, limit=_PAGE, before=before):
            async with self.engine.connect() as conn:
                threads = await self._threads(conn, owner, [c.id for c in page])
            for thread in threads:
                yield thread
            before = page[-1].cursor

    async def pending(self, limit: int = 1000) -> list[tuple[str | None, Message]]:
        """Answers still waiting (queued) or cut by a stop of the process (streaming),
        oldest first, with their conversation's owner: what a new run picks up."""
        query = (
            sa.select(chat_messages, conversations.c.owner.label("owner_name"))
            .join(conversations, conversations.c.id == chat_messages.c.conversation_id)
            .where(chat_messages.c.state.in_(("queued", "streaming")))
            .order_by(chat_messages.c.created_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = await conn.execute(query)
            return [(row.owner_name, _message(row)) for row in rows]

    # -- imports ---------------------------------------------------------------------

    async def add_threads(self, threads: Sequence[Thread]) -> list[Stored]:
        """Write imported conversations in one transaction: a new one whole; one that is
        there already only its messages that are not (so importing an export twice adds
        nothing, and a newer export of the same conversation adds its new messages and
        moves its current leaf).  Ids must be derived from the export's."""
        async with self.engine.begin() as conn:
            ids = [t.conversation.id for t in threads]
            there: set[str] = set()
            known: set[str] = set()
            for chunk in _chunks(ids):
                rows = await conn.execute(
                    sa.select(conversations.c.id).where(conversations.c.id.in_(chunk))
                )
                there.update(rows.scalars())
            for chunk in _chunks(sorted(there)):
                rows = await conn.execute(
                    sa.select(chat_messages.c.id).where(chat_messages.c.conversation_id.in_(chunk))
                )
                known.update(rows.scalars())
            new = [t.conversation for t in threads if t.conversation.id not in there]
            added = [
                (t.conversation.owner, m) for t in threads for m in t.messages if m.id not in known
            ]
            if new:
                await conn.execute(conversations.insert(), [_conversation_row(c) for c in new])
                await self.index.add_conversations(conn, new)
            if added:
                await conn.execute(
                    chat_messages.insert(), [_message_row(m, owner) for owner, m in added]
                )
                await self.index.add_messages(conn, added)
            counts: dict[str, int] = {}
            for _, message in added:
                counts[message.conversation_id] = counts.get(message.conversation_id, 0) + 1
            for thread in threads:
                c = thread.conversation
                if c.id in there and counts.get(c.id):
                    await conn.execute(
                        conversations.update()
                        .where(conversations.c.id == c.id)
                        .values(current_message_id=c.current_message_id, updated_at=c.updated_at)
                    )
        return [
            Stored(t.conversation.id not in there, counts.get(t.conversation.id, 0))
            for t in threads
        ]

    # -- reading ---------------------------------------------------------------------

    async def _owned(
        self, conn: AsyncConnection, owner: str | None, conversation_id: str
    ) -> Conversation:
        rows = await self._conversation_rows(conn, owner, [conversation_id])
        if not rows:
            raise ChatNotFound(f"no conversation {conversation_id}")
        return rows[0]

    async def _in_conversation(
        self, conn: AsyncConnection, conversation_id: str, message_id: str
    ) -> None:
        found = await conn.execute(
            sa.select(chat_messages.c.id).where(
                chat_messages.c.id == message_id,
                chat_messages.c.conversation_id == conversation_id,
            )
        )
        if found.first() is None:
            raise ChatNotFound(f"no message {message_id} in conversation {conversation_id}")

    async def _conversation_rows(
        self, conn: AsyncConnection, owner: str | None, ids: Sequence[str]
    ) -> list[Conversation]:
        found: list[Conversation] = []
        for chunk in _chunks(ids):
            rows = await conn.execute(
                sa.select(conversations).where(conversations.c.id.in_(chunk), _visible(owner))
            )
            found += [_conversation(row) for row in rows]
        return found

    async def _threads(
        self, conn: AsyncConnection, owner: str | None, ids: Sequence[str]
    ) -> list[Thread]:
        """The conversations ``ids`` that ``owner`` sees, with their messages, in the
        order of ``ids``."""
        heads = {c.id: c for c in await self._conversation_rows(conn, owner, ids)}
        messages: dict[str, list[Message]] = {cid: [] for cid in heads}
        for chunk in _chunks(list(heads)):
            rows = await conn.execute(
                sa.select(chat_messages)
                .where(chat_messages.c.conversation_id.in_(chunk))
                .order_by(chat_messages.c.created_at, chat_messages.c.id)
            )
            for row in rows:
                messages[row.conversation_id].append(_message(row))
        return [Thread(heads[cid], tuple(messages[cid])) for cid in ids if cid in heads]


def _columns(changes: dict[str, Any]) -> list[str]:
    return ["extra_json" if name == "extra" else name for name in changes]
