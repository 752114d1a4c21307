"""Jinja filters of the admin UI's templates."""

from __future__ import annotations

import datetime as dt

from quart_trio import QuartTrio


def format_datetime(value: object) -> str:
    """A Unix time as UTC, to the second: ``2026-12-02 04:20:11 UTC`` ("" for no time)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    return dt.datetime.fromtimestamp(float(value), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_size(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    size = float(value)
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} MB"


def install_filters(app: QuartTrio) -> None:
    app.jinja_env.filters["datetime"] = format_datetime
    app.jinja_env.filters["size"] = format_size
