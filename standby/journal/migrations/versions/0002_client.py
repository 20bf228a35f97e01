"""Requests record which client (the name of its client key) sent them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Rows from before have no client: only the admin token sees them through the stored
completions and Responses endpoints once client keys are set.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("client", sa.String))
    op.create_index("ix_requests_client_received_at", "requests", ["client", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_requests_client_received_at", table_name="requests")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("client")
