"""Standby's own incidents and their timelines.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("component", sa.String, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("severity", sa.String, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("opened_at", sa.Double, nullable=False),
        sa.Column("first_failure_at", sa.Double),
        sa.Column("acknowledged_at", sa.Double),
        sa.Column("resolved_at", sa.Double),
        sa.Column("muted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("official_json", sa.Text),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_index("ix_incidents_status_opened_at", "incidents", ["status", "opened_at"])
    op.create_index("ix_incidents_component_status", "incidents", ["component", "status"])
    op.create_table(
        "incident_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.String, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data_json", sa.Text),
    )
    op.create_index("ix_incident_events_incident_at", "incident_events", ["incident_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_incident_events_incident_at", table_name="incident_events")
    op.drop_table("incident_events")
    op.drop_index("ix_incidents_component_status", table_name="incidents")
    op.drop_index("ix_incidents_status_opened_at", table_name="incidents")
    op.drop_table("incidents")
