"""Messages sent per scope and UTC day, for warm-up caps.

A scope names what a cap applies to: ``pool:<name>`` or ``domain:<name>``.
Increments are atomic upserts, so several nodes can count into one row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from appliance.store.database import Database
from appliance.store.schema import send_counters
from appliance.store.upserts import insert_for


class SendCounters:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def counts(self, scopes: Sequence[str], day: str) -> dict[str, int]:
        """Messages sent on ``day`` (YYYY-MM-DD, UTC) per scope; 0 for a scope not seen."""
        wanted = sorted(set(scopes))
        if not wanted:
            return {}
        query = sa.select(send_counters.c.scope, send_counters.c.count).where(
            send_counters.c.day == day, send_counters.c.scope.in_(wanted)
        )

        def fn(conn: sa.Connection) -> dict[str, int]:
            found = {scope: int(n) for scope, n in conn.execute(query).all()}
            return {scope: found.get(scope, 0) for scope in wanted}

        return await self._db.read(fn)

    async def add(self, increments: Mapping[str, int], day: str) -> None:
        """Add ``increments`` (scope → messages) to ``day``'s counts, in one transaction."""
        # Sorted, so two nodes adding to the same scopes lock the rows in one order.
        rows = [
            {"scope": scope, "day": day, "count": n}
            for scope, n in sorted(increments.items())
            if n != 0
        ]
        if not rows:
            return

        def fn(conn: sa.Connection) -> None:
            insert = insert_for(conn, send_counters)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[send_counters.c.scope, send_counters.c.day],
                    set_={"count": send_counters.c.count + insert.excluded["count"]},
                ),
                rows,
            )

        await self._db.write(fn)
