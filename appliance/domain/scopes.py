"""API key scopes, named as SendGrid names them.

A key holds a set of scope names. A key created without ``scopes`` has full
access: every scope in ``ALL_SCOPES``. A key can only grant scopes it holds
itself, so a restricted key can never mint a stronger one.
"""

from __future__ import annotations

from collections.abc import Iterable

_CRUD = ("create", "read", "update", "delete")


def _crud(base: str) -> list[str]:
    return [f"{base}.{verb}" for verb in _CRUD]


_SUPPRESSION_LISTS = ("bounces", "blocks", "spam_reports", "invalid_emails", "unsubscribes")

ALL_SCOPES: frozenset[str] = frozenset(
    [
        "mail.send",
        *_crud("mail.batch"),
        *_crud("api_keys"),
        *_crud("suppression"),
        *(s for name in _SUPPRESSION_LISTS for s in _crud(f"suppression.{name}")),
        *_crud("asm.groups"),
        *_crud("asm.groups.suppressions"),
        *_crud("asm.suppressions.global"),
        "stats.read",
        "stats.global.read",
        "stats.export",  # POST /v3/stats/rebuild (Postyard's)
        *_crud("categories"),
        "categories.stats.read",
        "categories.stats.sums.read",
        "messages.read",
        "email_activity.read",
        *_crud("messages"),
        *_crud("user.webhooks.event.settings"),
        *_crud("user.webhooks.event.test"),
        *_crud("templates"),
        *_crud("templates.versions"),
        *_crud("domains"),
        *_crud("ip_pools"),
        *_crud("relays"),
        "events.stream.read",
        "events.ingest.create",
        *_crud("alerts"),
        *_crud("mail_settings"),
    ]
)

INGEST_SCOPES: frozenset[str] = frozenset({"events.ingest.create"})
"""Scopes of an ingestion key for an external MTA's log agent (nothing else)."""


def unknown_scopes(names: Iterable[str]) -> list[str]:
    return sorted({n for n in names if n not in ALL_SCOPES})


def sorted_scopes(names: Iterable[str]) -> list[str]:
    return sorted(set(names))


def grants(held: frozenset[str], required: str) -> bool:
    """Whether a key holding ``held`` may use an endpoint needing ``required``.

    The parent suppression scope (``suppression.read``) covers every list's
    scope (``suppression.bounces.read``), as in SendGrid's permission tree.
    """
    if required in held:
        return True
    parts = required.split(".")
    if parts[0] == "suppression" and len(parts) == 3:
        return f"suppression.{parts[2]}" in held
    return False
