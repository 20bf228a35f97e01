"""Full-text search over the chat page's conversations: the query, the hits, and what
an index of one database provides (``SearchIndex``).

A query is words and "quoted phrases", all of which must appear in one message (or in
the title); a last word ending in ``*`` matches as a prefix.  Nothing the user types is
ever read as query syntax: each term is passed to the database as a literal.  The
indexes: SQLite's FTS5 (``standby.chat.fts5``) and PostgreSQL's tsvector
(``standby.chat.tsvector``).

Ranking reads every matching row, so a word found in most messages would cost time in
proportion to the whole history; a search must not.  Beyond ``WINDOW`` matching
messages, PostgreSQL ranks the newest ``WINDOW`` of a client's, and SQLite (whose bm25
also counts every row of each word) lists the newest matches first.  A search of
everyone's conversations on PostgreSQL lists the newest first beyond
``tsvector.RANKED`` (1,000) matching messages: finding the newest ``WINDOW`` of them
takes too long there.  Below that, the ranking is exact.  Both return the best hit of
each conversation, best first, with a snippet whose matches sit between ``MARK_START``
and ``MARK_END``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from standby.chat.model import Conversation, Message

MARK_START, MARK_END = "\x02", "\x03"  # around each match in a snippet
SEARCH_TEXT_LIMIT = 100_000  # characters of a message that are indexed (as migration 0006)
MAX_TERMS = 16
WINDOW = 5_000  # matching messages beyond which only the newest count
SNIPPET_TOKENS = 16
_TERM = re.compile(r'"([^"]*)"?|(\S+)')
WORD = re.compile(r"[^\W_]+")  # what both databases' tokenizers see as a word


@dataclass(frozen=True, slots=True)
class Term:
    text: str  # one word or a phrase
    prefix: bool = False  # its last word matches as a prefix


def parse_query(query: str) -> tuple[Term, ...]:
    """The terms of what the user typed: quoted phrases and words; nothing without a
    letter or digit; at most ``MAX_TERMS``."""
    terms: list[Term] = []
    for match in _TERM.finditer(query[:1000]):
        phrase, word = match.group(1), match.group(2)
        text, prefix = (phrase, False) if phrase is not None else (word, word.endswith("*"))
        text = text.rstrip("*") if prefix else text
        if WORD.search(text):
            terms.append(Term(text, prefix))
    return tuple(terms[:MAX_TERMS])


@dataclass(frozen=True, slots=True)
class Hit:
    """A conversation found, with the message that matched best (None: its title)."""

    conversation: Conversation
    message_id: str | None
    snippet: str  # matches between MARK_START and MARK_END
    score: float  # higher is better; comparable within one search only

    @property
    def text(self) -> str:
        """The snippet without its marks."""
        return self.snippet.replace(MARK_START, "").replace(MARK_END, "")

    def segments(self) -> list[tuple[str, bool]]:
        """The snippet as (text, matched) pieces, for a page to escape and highlight."""
        pieces: list[tuple[str, bool]] = []
        for n, outer in enumerate(self.snippet.split(MARK_START)):
            inner, marked, rest = outer.partition(MARK_END)
            if n and marked:
                pieces.append((inner, True))
                outer = rest
            if outer:
                pieces.append((outer, False))
        return [piece for piece in pieces if piece[0]]


@dataclass(frozen=True, slots=True)
class Found:
    """One conversation's best hit, as the index reports it."""

    conversation_id: str
    message_id: str | None
    snippet: str
    score: float


class SearchIndex(Protocol):
    """What the store tells the index as it writes, and the search itself; every call
    runs in the store's transaction."""

    async def add_conversations(
        self, conn: AsyncConnection, found: Sequence[Conversation]
    ) -> None: ...

    async def rename(
        self, conn: AsyncConnection, conversation: Conversation, title: str
    ) -> None: ...

    async def add_messages(
        self, conn: AsyncConnection, owned: Sequence[tuple[str | None, Message]]
    ) -> None:
        """Index new ``messages``, each with its conversation's owner."""
        ...

    async def update_message(self, conn: AsyncConnection, message: Message) -> None:
        """Index ``message``'s new content."""
        ...

    async def remove(
        self,
        conn: AsyncConnection,
        conversation: Conversation,
        messages: Sequence[tuple[str, float]],
    ) -> None:
        """Forget ``conversation`` and its ``messages`` (id, created_at)."""
        ...

    async def search(
        self, conn: AsyncConnection, owner: str | None, terms: Sequence[Term], limit: int
    ) -> list[Found]:
        """The best hit of each of ``owner``'s conversations (None: everyone's), best
        first, at most ``limit``."""
        ...


def best_per_conversation(found: Iterable[Found], limit: int) -> list[Found]:
    best: dict[str, Found] = {}
    for hit in found:  # best first
        if hit.conversation_id not in best:
            best[hit.conversation_id] = hit
            if len(best) == limit:
                break
    return list(best.values())
