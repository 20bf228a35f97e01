"""Drills' results: each drill's verdict and report, kept past the process that ran it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drill_runs",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("target", sa.String, nullable=False),
        sa.Column("fault", sa.String, nullable=False),
        sa.Column("share", sa.Double, nullable=False),
        sa.Column("duration", sa.Double, nullable=False),
        sa.Column("scheduled", sa.Boolean, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("ended_at", sa.Double, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("passed", sa.Boolean),
        sa.Column("summary_json", sa.Text, nullable=False),
        sa.Column("report_json", sa.Text),
    )
    op.create_index("ix_drill_runs_started_at", "drill_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_drill_runs_started_at", table_name="drill_runs")
    op.drop_table("drill_runs")
