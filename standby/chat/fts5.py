"""Chat search on SQLite: the FTS5 table ``chat_search`` of migration 0006.

One row per message and one per conversation title, written by the store in the
transaction of each write (no trigger: the rowid is computed here).  A row's rowid is
made from its time and its id (``rowid``), so it is found again without a lookup table,
and rowids run in time order.  The owner is a column of its own holding one token
(``owner_token``), so a client's search reads only its own rows.

Ranking: bm25, the title weighing twice the body (migration 0006 sets it as the
table's ``rank``).  But bm25 counts, for each word of the query (and the owner's
token), every row of the table that holds it, whatever the rest of the query: a query
with a word found in most messages would cost time in proportion to the history.  So
two cheap probes come first — FTS5 walks a word's rows in rowid order without ranking
them —: when the query matches more than ``WINDOW`` messages, or one of its words more
than ``COMMON`` rows, the newest matches come first instead (``Found.score`` is then
the rowid: newer is higher).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from standby.chat.model import Conversation, Message
from standby.chat.search import (
    MARK_END,
    MARK_START,
    SEARCH_TEXT_LIMIT,
    SNIPPET_TOKENS,
    WINDOW,
    Found,
    Term,
    best_per_conversation,
)

_EPOCH = 946_684_800  # 2000-01-01 UTC
_HOUR_BITS, _HASH_BITS = 20, 43  # hours to 2119, then a hash: 63 bits, a positive int64
_CHUNK = 500  # rowids per IN list
COMMON = 50_000  # rows of one word beyond which bm25 costs more than a search may


def rowid(created_at: float, key: str) -> int:
    """A message's rowid (``key``: its id) or a title's (``title:<conversation id>``):
    the hour of ``created_at`` in the high bits, so rowids run in time order, and a hash
    of ``key`` below.  Two of 10,000 rows of one hour share a rowid with a chance of 1
    in 180,000; that makes the write fail loudly (the rowid is unique), never mixes two
    rows up."""
    hours = min(max(0, int(created_at - _EPOCH) // 3600), (1 << _HOUR_BITS) - 1)
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return (hours << _HASH_BITS) | (int.from_bytes(digest, "big") >> (64 - _HASH_BITS))


def _title_rowid(conversation: Conversation) -> int:
    return rowid(conversation.created_at, f"title:{conversation.id}")


def owner_token(owner: str | None) -> str:
    """The owner as one token of FTS5's tokenizer: ``o`` and the name's UTF-8 in hex."""
    return "o" + (owner or "").encode().hex()


def _string(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def expression(owner: str | None, terms: Sequence[Term], *, scoped: bool) -> str:
    """The MATCH expression: every term, and (``scoped``) the owner's token in the
    owner column.  The terms are not held to the title and body columns (FTS5 would
    read every candidate's positions to check): only the owner column holds owner
    tokens, and the store checks each conversation's owner again anyway."""
    words = " ".join(_string(t.text) + (" *" if t.prefix else "") for t in terms)
    return f"owner : {_string(owner_token(owner))} AND ({words})" if scoped else words


def _chunks(rowids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(rowids), _CHUNK):
        yield rowids[start : start + _CHUNK]


class FTS5Index:
    """``SearchIndex`` over SQLite's FTS5 table ``chat_search``."""

    _insert = sa.text(
        "INSERT INTO chat_search (rowid, owner, title, body, conversation_id, message_id) "
        "VALUES (:rowid, :owner, :title, :body, :conversation_id, :message_id)"
    )
    # whether more than :skip rows match: walks at most that many rowids (in ascending
    # order, which FTS5 does faster than descending)
    _beyond = sa.text(
        "SELECT rowid FROM chat_search WHERE chat_search MATCH :expression "
        "ORDER BY rowid LIMIT 1 OFFSET :skip"
    )
    _snippet = (
        "CASE WHEN message_id IS NULL "
        f"THEN snippet(chat_search, 1, :start, :end, '…', {SNIPPET_TOKENS}) "
        f"ELSE snippet(chat_search, 2, :start, :end, '…', {SNIPPET_TOKENS}) END"
    )
    _ranked = sa.text(
        f"SELECT conversation_id, message_id, -rank AS score, {_snippet} AS snippet "
        "FROM chat_search WHERE chat_search MATCH :expression ORDER BY rank LIMIT :limit"
    )
    _newest = sa.text(
        f"SELECT conversation_id, message_id, rowid AS score, {_snippet} AS snippet "
        "FROM chat_search WHERE chat_search MATCH :expression "
        "ORDER BY rowid DESC LIMIT :limit"
    )
    _delete = sa.text("DELETE FROM chat_search WHERE rowid IN :rowids").bindparams(
        sa.bindparam("rowids", expanding=True)
    )

    def __repr__(self) -> str:
        return "<FTS5Index chat_search>"

    async def add_conversations(self, conn: AsyncConnection, found: Sequence[Conversation]) -> None:
        if found:
            rows = [
                {
                    "rowid": _title_rowid(c),
                    "owner": owner_token(c.owner),
                    "title": c.title,
                    "body": "",
                    "conversation_id": c.id,
                    "message_id": None,
                }
                for c in found
            ]
            await conn.execute(self._insert, rows)

    async def rename(self, conn: AsyncConnection, conversation: Conversation, title: str) -> None:
        await conn.execute(
            sa.text("UPDATE chat_search SET title = :title WHERE rowid = :rowid"),
            {"title": title, "rowid": _title_rowid(conversation)},
        )

    async def add_messages(
        self, conn: AsyncConnection, owned: Sequence[tuple[str | None, Message]]
    ) -> None:
        if owned:
            rows = [
                {
                    "rowid": rowid(m.created_at, m.id),
                    "owner": owner_token(owner),
                    "title": "",
                    "body": m.content[:SEARCH_TEXT_LIMIT],
                    "conversation_id": m.conversation_id,
                    "message_id": m.id,
                }
                for owner, m in owned
            ]
            await conn.execute(self._insert, rows)

    async def update_message(self, conn: AsyncConnection, message: Message) -> None:
        await conn.execute(
            sa.text("UPDATE chat_search SET body = :body WHERE rowid = :rowid"),
            {
                "body": message.content[:SEARCH_TEXT_LIMIT],
                "rowid": rowid(message.created_at, message.id),
            },
        )

    async def remove(
        self,
        conn: AsyncConnection,
        conversation: Conversation,
        messages: Sequence[tuple[str, float]],
    ) -> None:
        rowids = [_title_rowid(conversation), *(rowid(at, mid) for mid, at in messages)]
        for chunk in _chunks(rowids):
            await conn.execute(self._delete, {"rowids": list(chunk)})

    async def _more_than(self, conn: AsyncConnection, match: str, count: int) -> bool:
        found = await conn.scalar(self._beyond, {"expression": match, "skip": count})
        return found is not None

    async def _rankable(
        self, conn: AsyncConnection, owner: str | None, terms: Sequence[Term]
    ) -> bool:
        """Whether bm25 may rank this query: few matches, no word in too many rows."""
        if await self._more_than(conn, expression(owner, terms, scoped=owner is not None), WINDOW):
            return False
        if owner is not None and await self._more_than(
            conn, f"owner : {_string(owner_token(owner))}", COMMON
        ):
            return False
        for term in terms if len(terms) > 1 else ():  # one word: the first probe said
            if await self._more_than(conn, expression(None, [term], scoped=False), COMMON):
                return False
        return True

    async def search(
        self, conn: AsyncConnection, owner: str | None, terms: Sequence[Term], limit: int
    ) -> list[Found]:
        match = expression(owner, terms, scoped=owner is not None)
        statement = self._ranked if await self._rankable(conn, owner, terms) else self._newest
        # the best rows first; a conversation may hold several of them, so read more
        # rows until ``limit`` conversations are among them (or there are no more)
        wanted = limit * 4
        while True:
            rows = await conn.execute(
                statement,
                {"expression": match, "limit": wanted, "start": MARK_START, "end": MARK_END},
            )
            found = [Found(r.conversation_id, r.message_id, r.snippet, r.score) for r in rows]
            best = best_per_conversation(found, limit)
            if len(best) >= limit or len(found) < wanted or wanted >= limit * 256:
                return best
            wanted *= 4
