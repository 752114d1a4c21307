"""A per-process change counter, so a cache of rows knows when this node changed them.

The store bumps :class:`ChangeCounter` after every write that can change what
it guards (here: a tenant's status, a sending domain); a cache notes the value
before it reads and treats an entry as stale once the value has moved on.
Other nodes' writes are not seen: their caches expire by TTL instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection

from appliance.store.database import Database

T = TypeVar("T")


class ChangeCounter:
    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> None:
        self.value += 1

    async def write(self, db: Database, fn: Callable[[Connection], T]) -> T:
        """``db.write(fn)``, then bump (also when it failed: it may have committed)."""
        try:
            return await db.write(fn)
        finally:
            self.bump()
