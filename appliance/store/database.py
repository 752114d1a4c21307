"""Engines and the thread boundary: blocking SQL runs in worker threads.

SQLite: WAL journal, one writer connection (writes are serialised by a
capacity limiter of one, so there is never a lock fight inside the process)
and a pool of reader connections used concurrently from threads.
PostgreSQL (psycopg 3, sync API): one pooled engine for both; concurrent
writers are fine there and several nodes may share it.

Callers hand a function of a ``Connection`` to ``read`` or ``write``; it runs
in a worker thread inside one transaction. A trio task that is cancelled
waits for its thread to finish, so a transaction is never left half-done.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import trio
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool, StaticPool

T = TypeVar("T")
log = logging.getLogger("appliance.store")


class StoreError(Exception):
    """The database cannot be used; the message says what to check."""


class StoreFull(StoreError):
    """The database has no space left (SQLITE_FULL, PostgreSQL's disk_full 53100): nothing of
    the failed transaction was written, what was committed before is kept. The HTTP API
    answers 507, SMTP submission 452 4.3.1."""


_PG_DISK_FULL = "53100"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class Database:
    """Owns the engines and runs transactions in threads."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = sa.engine.make_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            database = self.url.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            args = {"check_same_thread": False, "timeout": 10}
            self.writer = sa.create_engine(self.url, poolclass=StaticPool, connect_args=args)
            self.reader = sa.create_engine(
                self.url, poolclass=QueuePool, pool_size=pool_size, connect_args=args
            )
            for engine in (self.writer, self.reader):
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            self._write_limiter = trio.CapacityLimiter(1)
        elif self.dialect == "postgresql":
            engine = sa.create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
            )
            self.writer = self.reader = engine
            self._write_limiter = trio.CapacityLimiter(pool_size)
        else:
            raise StoreError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        self._read_limiter = trio.CapacityLimiter(pool_size)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a thread, in a read-only transaction."""
        return await trio.to_thread.run_sync(self._run, self.reader, fn, limiter=self._read_limiter)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a thread, in one transaction that commits on return."""
        return await trio.to_thread.run_sync(
            self._run, self.writer, fn, limiter=self._write_limiter
        )

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        return self._run(self.reader, fn)

    def write_sync(self, fn: Callable[[Connection], T]) -> T:
        return self._run(self.writer, fn)

    @staticmethod
    def _run(engine: Engine, fn: Callable[[Connection], T]) -> T:
        try:
            with engine.begin() as conn:
                return fn(conn)
        except sa.exc.OperationalError as exc:
            if _is_full(exc):
                raise StoreFull(
                    f"The message store is full ({_orig_text(exc)}): nothing was written. "
                    "Mail accepted before is kept. Free space on the database volume "
                    "(the data directory for SQLite), then retry."
                ) from exc
            raise StoreError(_explain(exc)) from exc

    async def ping(self) -> float:
        """Round-trip a trivial query; returns the latency in seconds."""
        start = time.perf_counter()
        await self.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())
        return time.perf_counter() - start

    def dispose(self) -> None:
        self.writer.dispose()
        self.reader.dispose()


def _orig_text(exc: sa.exc.DBAPIError) -> str:
    return (str(exc.orig) if exc.orig is not None else str(exc)).strip()


def _is_full(exc: sa.exc.DBAPIError) -> bool:
    """SQLITE_FULL (disk full or max_page_count reached) or PostgreSQL's disk_full."""
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_FULL:  # primary code
        return True
    return getattr(orig, "sqlstate", None) == _PG_DISK_FULL


def _explain(exc: sa.exc.OperationalError) -> str:
    text = _orig_text(exc)
    lowered = text.lower()
    if "disk" in lowered and "full" in lowered:
        return f"database disk is full ({text}): free space on the data volume"
    if "connection refused" in lowered or "could not connect" in lowered:
        return f"cannot reach the database ({text}): check POSTYARD_DATABASE_URL and the server"
    if "database is locked" in lowered:
        return f"database is locked by another process ({text})"
    return f"database error: {text}"
