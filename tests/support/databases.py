"""Real databases for tests: a fresh SQLite file, or a fresh PostgreSQL database.

PostgreSQL comes from ``POSTYARD_TEST_PG`` (default the local server at
127.0.0.1:5432, user postgres, trust auth). When it cannot be reached the
PostgreSQL variants are skipped with the reason; they are never faked.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("POSTYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_pg_error: str | None = None
_pg_checked = False


def postgres_unavailable() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per session)."""
    global _pg_checked, _pg_error
    if not _pg_checked:
        _pg_checked = True
        try:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # any failure means: skip, with the reason
            _pg_error = f"{type(exc).__name__}: {exc}".strip()
    return _pg_error


@contextmanager
def fresh_database(engine: str, tmp_path: Path) -> Iterator[str]:
    """Yield a SQLAlchemy URL of an empty database, dropped afterwards."""
    if engine == "sqlite":
        yield f"sqlite:///{tmp_path / 'postyard-test.db'}"
        return
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(
            f"PostgreSQL not reachable at {PG_ADMIN_URL} ({reason}); "
            "set POSTYARD_TEST_PG to run the PostgreSQL variants"
        )
    import psycopg

    name = f"postyard_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
