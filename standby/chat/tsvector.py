"""Chat search on PostgreSQL: the generated ``search`` tsvector columns of migration 0006
(the 'simple' configuration: no stemming, any language), each with a GIN index.

The database keeps the columns in step, so the store's writes cost nothing here.  A
query's terms become one tsquery (``tsquery``), and only the hits returned get a snippet
(``ts_headline``).

A client's search (``_ranked``) ranks by ``ts_rank`` the newest ``WINDOW`` matching
messages of the owner (``chat_messages.owner`` and its index spare a join per match) and
titles (weighing double).

Everyone's search (the admin's, and the single user's when there are no client keys)
cannot do the same in time: the newest 5,000 matches of a word found in one message of
a hundred are either all its matches read at random (10,000 pages in 900,000 messages)
or 500,000 messages walked back in time, and the planner took the walk for a prefix
that matched one message in 45 (190 ms in ``bench/chat_search_bench.py``).  So:

* ``_ranked_all`` first reads any ``RANKED`` + 1 matching messages, in the table's
  order (through the GIN index, or a scan that stops once it has them).  No more than
  ``RANKED``: they are all the matches, ranked exactly with the titles as a client's
  are.
* Beyond: the newest first (``_newest``), as SQLite's index does beyond ``WINDOW`` — a
  message as of its time, a title as of its conversation's last activity
  (``Found.score`` is that time).  The newest ``SCAN`` messages are walked back for
  them; when those hold too few (a word used mostly long ago), all the matches are read
  through the GIN index and the newest kept: the walk reads at most ``SCAN`` messages,
  the index only the query's matches.
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

RANKED = 1_000  # everyone's matching messages beyond which the newest come first
SCAN = 10_000  # newest messages walked for the newest matches before asking the index

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


def _hits(query: str) -> str:
    """The hits of the CTE ``top`` (cid, mid, score) with their snippets."""
    return (
        "SELECT top.cid, top.mid, top.score, ts_headline('simple', "
        f"CASE WHEN top.mid IS NULL THEN c.title ELSE left(m.content, {SEARCH_TEXT_LIMIT}) "
        f"END, {query}, :options) AS snippet "
        "FROM top JOIN conversations c ON c.id = top.cid "
        "LEFT JOIN chat_messages m ON m.id = top.mid"
    )


def _ranked(query: str) -> sa.TextClause:
    """A client's search.  The tsquery is written out in each place (not taken from a
    CTE) so that the planner sees how common its words are: a rare word is found
    through the GIN index, a common one by walking the owner's messages newest first
    until ``:window`` match."""
    return sa.text(
        "WITH recent AS ("
        f"SELECT m.conversation_id AS cid, m.id AS mid, ts_rank(m.search, {query}) AS score "
        "FROM (SELECT conversation_id, id, search FROM chat_messages m "
        f"WHERE m.search @@ {query} AND m.owner = :owner "
        "ORDER BY m.created_at DESC LIMIT :window) m), "
        "titles AS ("
        f"SELECT c.id AS cid, CAST(NULL AS varchar) AS mid, 2 * ts_rank(c.search, {query}) "
        "AS score FROM (SELECT id, search FROM conversations c "
        f"WHERE c.search @@ {query} AND c.owner = :owner "
        "ORDER BY c.updated_at DESC LIMIT :window) c), "
        "best AS (SELECT DISTINCT ON (cid) cid, mid, score "
        "FROM (SELECT * FROM recent UNION ALL SELECT * FROM titles) hits "
        "ORDER BY cid, score DESC), "
        "top AS (SELECT cid, mid, score FROM best ORDER BY score DESC, cid LIMIT :limit) "
        + _hits(query)
        + " ORDER BY top.score DESC, top.cid"
    )


def _ranked_all(query: str) -> sa.TextClause:
    """Everyone's search when at most ``:ranked`` messages match, in one statement: it
    reads any ``:ranked`` + 1 matching messages, and only when that found them all
    (``few``) ranks them and reads the titles.  One row at least: ``few``, and no hit
    when there is none."""
    return sa.text(
        "WITH matched AS MATERIALIZED ("
        "SELECT conversation_id AS cid, id AS mid, search FROM chat_messages m "
        f"WHERE m.search @@ {query} LIMIT :ranked + 1), "
        "few AS MATERIALIZED (SELECT count(*) <= :ranked AS few FROM matched), "
        "recent AS ("
        f"SELECT cid, mid, ts_rank(search, {query}) AS score FROM matched "
        "WHERE (SELECT few FROM few)), "
        "titles AS ("
        f"SELECT c.id AS cid, CAST(NULL AS varchar) AS mid, 2 * ts_rank(c.search, {query}) "
        "AS score FROM (SELECT id, search FROM conversations c "
        f"WHERE (SELECT few FROM few) AND c.search @@ {query} "
        "ORDER BY c.updated_at DESC LIMIT :window) c), "
        "best AS (SELECT DISTINCT ON (cid) cid, mid, score "
        "FROM (SELECT * FROM recent UNION ALL SELECT * FROM titles) hits "
        "ORDER BY cid, score DESC), "
        "top AS (SELECT cid, mid, score FROM best ORDER BY score DESC, cid LIMIT :limit), "
        f"hits AS ({_hits(query)}) "
        "SELECT few.few, hits.* FROM few LEFT JOIN hits ON true "
        "ORDER BY hits.score DESC, hits.cid"
    )


def _newest(query: str, walk: bool) -> sa.TextClause:
    """Everyone's search beyond ``:ranked`` matches: the conversations of the newest
    ``:wanted`` matching messages and of the newest matching titles, newest first.
    ``walk``: the matches among the newest ``:scan`` messages only, read by walking them
    back in time; otherwise all the matches, found through the GIN index (a walk until
    ``:wanted`` match would read the whole history for a word found mostly long ago).
    One row at least: how many messages were read (``read``) and in how many
    conversations (``spread``), so that the caller knows whether to read more."""
    matches = (
        "SELECT conversation_id, id, created_at, search FROM chat_messages "
        "ORDER BY created_at DESC LIMIT :scan"
        if walk
        else f"WITH matches AS MATERIALIZED (SELECT conversation_id, id, created_at "
        f"FROM chat_messages WHERE search @@ {query}) SELECT * FROM matches"
    )
    return sa.text(
        "WITH recent AS MATERIALIZED ("
        "SELECT m.conversation_id AS cid, m.id AS mid, m.created_at AS score "
        f"FROM ({matches}) m "
        + (f"WHERE m.search @@ {query} " if walk else "")
        + "ORDER BY m.created_at DESC LIMIT :wanted), "
        "titles AS ("
        "SELECT c.id AS cid, CAST(NULL AS varchar) AS mid, c.updated_at AS score "
        f"FROM conversations c WHERE c.search @@ {query} "
        "ORDER BY c.updated_at DESC LIMIT :limit), "
        "read AS (SELECT count(*) AS read, count(DISTINCT cid) AS spread FROM recent), "
        "best AS (SELECT DISTINCT ON (cid) cid, mid, score "
        "FROM (SELECT * FROM recent UNION ALL SELECT * FROM titles) hits "
        "ORDER BY cid, score DESC), "
        "top AS (SELECT cid, mid, score FROM best ORDER BY score DESC, cid LIMIT :limit), "
        f"hits AS ({_hits(query)}) "
        "SELECT read.read, read.spread, hits.* FROM read LEFT JOIN hits ON true "
        "ORDER BY hits.score DESC, hits.cid"
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
        values: dict[str, object] = {**params, "limit": limit, "options": _HEADLINE}
        # a plan for these very words, every time: a plan made once for any words would
        # walk the GIN index for a word in every message, or the newest rows for a rare one
        await conn.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
        if owner is not None:
            rows = await conn.execute(_ranked(query), {**values, "owner": owner, "window": WINDOW})
            return [Found(r.cid, r.mid, r.snippet, float(r.score)) for r in rows]
        ranked = (
            await conn.execute(_ranked_all(query), {**values, "ranked": RANKED, "window": WINDOW})
        ).all()
        if ranked[0].few:
            return [Found(r.cid, r.mid, r.snippet, float(r.score)) for r in ranked if r.cid]
        return await self._newest(conn, query, values, limit)

    async def _newest(
        self, conn: AsyncConnection, query: str, values: dict[str, object], limit: int
    ) -> list[Found]:
        # the newest matching messages may all be in a few conversations: read more of
        # them until they fill ``limit`` conversations (or there are no more); when the
        # newest SCAN messages hold too few, all the matches, through the index
        wanted, walk = limit * 4, True
        while True:
            rows = (
                await conn.execute(_newest(query, walk), {**values, "wanted": wanted, "scan": SCAN})
            ).all()
            read, spread = rows[0].read, rows[0].spread
            if spread >= limit or (read < wanted and not walk) or wanted >= limit * 256:
                return [Found(r.cid, r.mid, r.snippet, float(r.score)) for r in rows if r.cid]
            if read < wanted:
                walk = False
            else:
                wanted *= 4
