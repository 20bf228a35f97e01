"""Chat search on PostgreSQL: the titles' GIN index without a pending list.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

A GIN index's "fast update" (on by default) queues new entries in a pending list of up
to ``gin_pending_list_limit`` (4 MB) that every search through the index reads whole,
until a vacuum or an overflow merges it into the index.  The conversations are rewritten
at each new message (their ``updated_at``), so the titles' index keeps its list nearly
full: 48,000 entries after the 100,000 conversations of ``bench/chat_search_bench.py``,
3.6 ms of a 6 ms search for a rare word.  A title is a few words, written seldom: its
entries go straight into the index, and the list left by 0006 is merged now.  (The
messages' index keeps fast update: a message has a hundred words, and an answer is saved
every half second as it streams.)
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER INDEX ix_conversations_search SET (fastupdate = off)")
        op.execute("SELECT gin_clean_pending_list('ix_conversations_search')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER INDEX ix_conversations_search RESET (fastupdate)")
