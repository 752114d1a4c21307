"""``postyard backup``: a consistent copy of a SQLite store while it is in use."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa


class BackupNotSupported(Exception):
    """The store is not SQLite; the message says which tool to use instead."""


def backup_sqlite(database_url: str, dest: Path) -> int:
    """Copy the SQLite database behind ``database_url`` to ``dest`` with SQLite's
    online backup API (safe while the appliance writes). Returns the pages copied."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupNotSupported(
            f"`postyard backup` copies SQLite stores; this one is {url.get_backend_name()}. "
            "Use the database's own tool, e.g. pg_dump --format=custom --file=postyard.dump "
            f"{url.set(drivername='postgresql').render_as_string(hide_password=True)}"
        )
    source_path = Path(url.database or "")
    if not source_path.exists():
        raise FileNotFoundError(f"no SQLite store at {source_path}; check data_dir")
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; choose a new file name")
    pages = 0

    def progress(status: int, remaining: int, total: int) -> None:
        nonlocal pages
        pages = total

    source = sqlite3.connect(source_path)
    try:
        target = sqlite3.connect(dest)
        try:
            source.backup(target, pages=1024, progress=progress)
        finally:
            target.close()
    finally:
        source.close()
    return pages
