"""The daily statistics roll-up, kept current as events are appended.

``roll_up`` is called by ``store.event_log.append_events`` in the event's
transaction; the mapping from events to SendGrid's 16 metrics is pure
(``domain.stats_metrics``) and the rows are ``stats_daily``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa


def roll_up(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add the metrics of ``rows`` to ``stats_daily`` (see module docstring)."""
    del conn, rows  # filled in by the statistics work (issue #6 item 6)
