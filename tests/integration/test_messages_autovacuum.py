"""PostgreSQL vacuums the queue table after a fixed number of dead rows (migration 0006)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from appliance.store.store import Store
from tests.support.databases import fresh_database


@pytest.mark.postgres
async def test_messages_has_a_fixed_autovacuum_threshold(tmp_path: Path) -> None:
    with fresh_database("postgresql", tmp_path) as url:
        store = await Store.open(url)
        try:
            options = await store.db.read(
                lambda c: c.execute(
                    sa.text("SELECT reloptions FROM pg_class WHERE relname = 'messages'")
                ).scalar()
            )
        finally:
            store.close()
    assert set(options) == {"autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=20000"}
