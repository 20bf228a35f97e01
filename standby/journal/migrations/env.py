"""Alembic environment for the journal: runs on the connection ``migrate()`` passes in."""

from __future__ import annotations

from alembic import context

from standby.journal.schema import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run journal migrations through standby.journal.migrate.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
