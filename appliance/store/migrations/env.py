"""Alembic environment: always run with a connection handed in by ``store.migrate``."""

from __future__ import annotations

from alembic import context

from appliance.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `postyard migrate` (appliance.store.migrate), "
        "which supplies the database connection"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
