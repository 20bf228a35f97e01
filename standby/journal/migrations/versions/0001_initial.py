"""The journal: requests and the write-ahead-log cursor.

Revision ID: 0001
Revises:
Create Date: 2025-11-27

Written out in full rather than built from ``schema.metadata``: a migration must keep
creating what it created on the day it was written, whatever the schema becomes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("rid", sa.String, primary_key=True),
        sa.Column("wal_id", sa.String, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("endpoint", sa.String, nullable=False),
        sa.Column("route", sa.String, nullable=False),
        sa.Column("model_asked", sa.String, nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("store", sa.Boolean, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("completion_id", sa.String),
        sa.Column("provider", sa.String),
        sa.Column("model", sa.String),
        sa.Column("finished_at", sa.Double),
        sa.Column("request_json", sa.Text),
        sa.Column("request_hash", sa.String),
        sa.Column("request_size", sa.Integer),
        sa.Column("response_json", sa.Text),
        sa.Column("content_sent", sa.Text),
        sa.Column("usage_json", sa.Text),
        sa.Column("metadata_json", sa.Text),
        sa.Column("attempts_json", sa.Text),
        sa.Column("defer_until", sa.Double),
        sa.Column("callback", sa.Text),
        sa.Column("deferred_tries", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_try_at", sa.Double),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_requests_received_at", "requests", ["received_at"])
    op.create_index("ix_requests_completion_id", "requests", ["completion_id"])
    op.create_index("ix_requests_state_received_at", "requests", ["state", "received_at"])
    op.create_table(
        "journal_cursor",
        sa.Column("wal_id", sa.String, primary_key=True),
        sa.Column("segment", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("journal_cursor")
    op.drop_index("ix_requests_state_received_at", table_name="requests")
    op.drop_index("ix_requests_completion_id", table_name="requests")
    op.drop_index("ix_requests_received_at", table_name="requests")
    op.drop_table("requests")
