"""The chat page's conversations and messages, and their full-text search.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Search differs per database and lives outside ``schema.metadata``:

* SQLite: an FTS5 table ``chat_search``, one row per message and one per title, written
  by ``standby.chat`` in the transaction that writes the message (its rowid is derived
  from the message's id, so it is found again without a lookup table).  The owner is an
  indexed column of its own, so a client's search reads only its own rows.  Ranked by
  bm25 with the title weighing twice a message.
* PostgreSQL: a generated ``search`` tsvector column on both tables (the 'simple'
  configuration: no stemming, any language), each with a GIN index.  A message is
  indexed up to its first 100,000 characters (a tsvector holds at most 1 MB).  Two more
  indexes on the messages, by time and by owner and time, let a search for a very
  common word read only the newest matches.

``chat_messages.owner`` repeats its conversation's owner (which never changes), so that
a client's search reads only its own messages, by index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _search_column(expression: str) -> list[sa.Column[str]]:
    if op.get_bind().dialect.name != "postgresql":
        return []
    return [sa.Column("search", postgresql.TSVECTOR, sa.Computed(expression, persisted=True))]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "conversations",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("owner", sa.String),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("source_id", sa.String),
        sa.Column("current_message_id", sa.String),
        *_search_column("to_tsvector('simple', title)"),
    )
    op.create_index(
        "ux_conversations_source", "conversations", ["source", "source_id", "owner"], unique=True
    )
    op.create_index("ix_conversations_owner_updated_at", "conversations", ["owner", "updated_at"])
    op.create_index("ix_conversations_updated_at", "conversations", ["updated_at"])
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("conversation_id", sa.String, nullable=False),
        sa.Column("owner", sa.String),
        sa.Column("parent_id", sa.String),
        sa.Column("role", sa.String, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("model", sa.String),
        sa.Column("provider", sa.String),
        sa.Column("continued", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("request_id", sa.String),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("extra_json", sa.Text),
        *_search_column("to_tsvector('simple', left(content, 100000))"),
    )
    op.create_index(
        "ix_chat_messages_conversation_created_at",
        "chat_messages",
        ["conversation_id", "created_at"],
    )
    op.create_index("ix_chat_messages_request_id", "chat_messages", ["request_id"])
    op.create_index("ix_chat_messages_state", "chat_messages", ["state"])
    if postgres:
        op.create_index(
            "ix_conversations_search", "conversations", ["search"], postgresql_using="gin"
        )
        op.create_index(
            "ix_chat_messages_search", "chat_messages", ["search"], postgresql_using="gin"
        )
        # a very common word: the newest matches are read by walking these backwards
        op.create_index("ix_chat_messages_created_at", "chat_messages", ["created_at"])
        op.create_index(
            "ix_chat_messages_owner_created_at", "chat_messages", ["owner", "created_at"]
        )
    else:
        op.execute(
            "CREATE VIRTUAL TABLE chat_search USING fts5(owner, title, body, "
            "conversation_id UNINDEXED, message_id UNINDEXED, "
            "tokenize = 'unicode61 remove_diacritics 2')"
        )
        # the default order (ORDER BY rank): bm25 over the title (twice) and the body; the
        # owner column only selects rows
        op.execute(
            "INSERT INTO chat_search(chat_search, rank) "
            "VALUES ('rank', 'bm25(0.0, 2.0, 1.0, 0.0, 0.0)')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE IF EXISTS chat_search")
    op.drop_table("chat_messages")
    op.drop_table("conversations")
