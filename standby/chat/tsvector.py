"""Chat search on PostgreSQL: the generated ``search`` tsvector columns of migration 0006
(the 'simple' configuration: no stemming, any language), each with a GIN index.

The database keeps the columns in step, so the store's writes cost nothing here.  A
query's terms become one tsquery (``tsquery``); the newest ``WINDOW`` matching messages
(of the owner: ``chat_messages.owner`` and its index spare a join per match) and titles
(weighing double) are ranked by ``ts_rank``, and only the hits returned get a snippet
(``ts_headline``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from standby.chat.model import Conversation, Message
from standby.chat.search import (
    MARK_END,
    MARK_START,
    SEARCH_TEXT_LIMIT,
    SNIPPET_TOKENS,
    WINDOW,
    WORD,
    Found,
    Term,
)

_HEADLINE = (
    f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords={SNIPPET_TOKENS + 4}, "
    'MinWords=8, MaxFragments=1, FragmentDelimiter=" … "'
)


def tsquery(terms: Sequence[Term]) -> tuple[str, dict[str, str]]:
    """A tsquery expression ANDing the terms, and its parameters: a phrase through
    ``phraseto_tsquery``; a prefix as its words in a row, the last one ``:*`` (the
    words are letters and digits only, so quoting them is safe)."""
    parts, params = [], {}
    for n, term in enumerate(terms):
        name = f"t{n}"
        if term.prefix:
            words = [w.lower() for w in WORD.findall(term.text)]
            params[name] = " <-> ".join(f"'{w}'" for w in words) + ":*"
            parts.append(f"to_tsquery('simple', :{name})")
        else:
            params[name] = term.text
            parts.append(f"phraseto_tsquery('simple', :{name})")
    return "(" + " && ".join(parts) + ")", params


def _statement(query: str, scoped: bool) -> sa.TextClause:
    """The search.  The tsquery is written out in each place (not taken from a CTE) so
    that the planner sees how common its words are: a rare word is found through the
    GIN index, a common one by walking the messages newest first until ``:window``
    match."""
    messages = "AND m.owner = :owner" if scoped else ""
    titles = "AND c.owner = :owner" if scoped else ""
    return sa.text(
        "WITH recent AS ("
        f"SELECT m.conversation_id AS cid, m.id AS mid, ts_rank(m.search, {query}) AS score "
        "FROM (SELECT conversation_id, id, search FROM chat_messages m "
        f"WHERE m.search @@ {query} {messages} "
        "ORDER BY m.created_at DESC LIMIT :window) m), "
        "titles AS ("
        f"SELECT c.id AS cid, CAST(NULL AS varchar) AS mid, 2 * ts_rank(c.search, {query}) "
        "AS score FROM (SELECT id, search FROM conversations c "
        f"WHERE c.search @@ {query} {titles} "
        "ORDER BY c.updated_at DESC LIMIT :window) c), "
        "best AS (SELECT DISTINCT ON (cid) cid, mid, score "
        "FROM (SELECT * FROM recent UNION ALL SELECT * FROM titles) hits "
        "ORDER BY cid, score DESC), "
        "top AS (SELECT cid, mid, score FROM best ORDER BY score DESC, cid LIMIT :limit) "
        "SELECT top.cid, top.mid, top.score, ts_headline('simple', "
        f"CASE WHEN top.mid IS NULL THEN c.title ELSE left(m.content, {SEARCH_TEXT_LIMIT}) "
        f"END, {query}, :options) AS snippet "
        "FROM top JOIN conversations c ON c.id = top.cid "
        "LEFT JOIN chat_messages m ON m.id = top.mid "
        "ORDER BY top.score DESC, top.cid"
    )


class TsvectorIndex:
    """``SearchIndex`` over PostgreSQL's generated tsvector columns."""

    def __repr__(self) -> str:
        return "<TsvectorIndex conversations.search, chat_messages.search>"

    async def add_conversations(self, conn: AsyncConnection, found: Sequence[Conversation]) -> None:
        pass

    async def rename(self, conn: AsyncConnection, conversation: Conversation, title: str) -> None:
        pass

    async def add_messages(
        self, conn: AsyncConnection, owned: Sequence[tuple[str | None, Message]]
    ) -> None:
        pass

    async def update_message(self, conn: AsyncConnection, message: Message) -> None:
        pass

    async def remove(
        self,
        conn: AsyncConnection,
        conversation: Conversation,
        messages: Sequence[tuple[str, float]],
    ) -> None:
        pass

    async def search(
        self, conn: AsyncConnection, owner: str | None, terms: Sequence[Term], limit: int
    ) -> list[Found]:
        query, params = tsquery(terms)
        values: dict[str, object] = {
            **params,
            "limit": limit,
            "window": WINDOW,
            "options": _HEADLINE,
        }
        if owner is not None:
            values["owner"] = owner
        # a plan for these very words, every time: a plan made once for any words would
        # walk the GIN index for a word in every message, or the newest rows for a rare one
        await conn.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
        rows = await conn.execute(_statement(query, owner is not None), values)
        return [Found(r.cid, r.mid, r.snippet, float(r.score)) for r in rows]
