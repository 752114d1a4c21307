"""Apply Alembic migrations on start-up (and from `postyard migrate`).

On PostgreSQL an advisory lock makes concurrent starts of several nodes
take turns: the first migrates, the others find the schema current.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from appliance.store.database import Database

log = logging.getLogger("appliance.store")
_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x706F7374  # "post"


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    def fn(conn: sa.Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    return db.read_sync(fn)


def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision; a no-op when it is current."""
    cfg = _alembic_config()
    with db.writer.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("schema migrated", extra={"from_revision": before, "to_revision": after})
