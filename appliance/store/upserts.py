"""``INSERT … ON CONFLICT`` for both engines.

SQLite and PostgreSQL spell the statement the same way, and SQLAlchemy has a
construct for each; this picks the one for the connection's dialect.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def insert_for(conn: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An insert with ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
