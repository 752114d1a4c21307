"""messages: vacuum after a fixed number of dead rows on PostgreSQL

Every delivered message leaves a dead entry at the head of the claim index
(ix_messages_due) until VACUUM removes it, and each claim walks those
entries; the default trigger (20 % of a table that keeps its delivered rows)
waits far too long (docs/performance.md: 491 ms for the first claim with
200,000 dead entries, 5.8 ms after VACUUM). SQLite has no autovacuum of this
kind and needs nothing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE messages SET "
            "(autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE messages RESET "
            "(autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)"
        )
