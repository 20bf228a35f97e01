"""The status page's hourly traffic figures, and its subscribers and their deliveries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traffic_hours",
        sa.Column("route", sa.String, primary_key=True),
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("failed", sa.BigInteger, nullable=False),
        sa.Column("slow", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "subscribers",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("components_json", sa.Text),
        sa.Column("secret", sa.Text),
        sa.Column("token_hash", sa.String, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("confirmed_at", sa.Double),
        sa.Column("ended_at", sa.Double),
    )
    op.create_index("ix_subscribers_state", "subscribers", ["state"])
    op.create_index("ix_subscribers_kind_address", "subscribers", ["kind", "address"])
    op.create_table(
        "subscription_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.String, nullable=False),
        sa.Column("update_id", sa.String, nullable=False),
        sa.Column("incident_id", sa.String, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("outcome", sa.String, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_index(
        "ux_subscription_deliveries",
        "subscription_deliveries",
        ["subscriber_id", "update_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("subscription_deliveries")
    op.drop_table("subscribers")
    op.drop_table("traffic_hours")
