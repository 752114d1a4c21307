"""Admin UI roles: which permissions each built-in role grants, and the rules for editing.

A permission is a scope name. API-key scopes (``domain/scopes.py``) are the
permissions of tenant data; the operator permissions below exist only for
people signed in to the admin UI (an API key can never hold them), so user,
role and tenant management is never reachable with a key.

Built-in roles: ``owner`` (everything), ``admin`` (everything but editing
roles), ``developer`` (sending, keys, templates, webhooks; reads the rest),
``viewer`` (reads only). Their permissions can be edited; custom roles can be
added. Nobody can give a user or a key more than they hold themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from appliance.domain.scopes import ALL_SCOPES

OPERATOR_PERMISSIONS: frozenset[str] = frozenset(
    [
        *(f"users.{verb}" for verb in ("create", "read", "update", "delete")),
        *(f"roles.{verb}" for verb in ("create", "read", "update", "delete")),
        *(f"tenants.{verb}" for verb in ("create", "read", "update")),
        "settings.read",
    ]
)

ALL_PERMISSIONS: frozenset[str] = ALL_SCOPES | OPERATOR_PERMISSIONS

_READS = frozenset(p for p in ALL_PERMISSIONS if p.endswith(".read"))

_DEVELOPER_WRITES = frozenset(
    p
    for p in ALL_SCOPES
    if p == "mail.send"
    or p.startswith(
        ("mail.batch.", "api_keys.", "templates.", "user.webhooks.", "asm.groups.", "messages.")
    )
)


@dataclass(frozen=True, slots=True)
class BuiltinRole:
    name: str
    description: str
    permissions: frozenset[str]


BUILTIN_ROLES: tuple[BuiltinRole, ...] = (
    BuiltinRole("owner", "Everything, including roles and users.", ALL_PERMISSIONS),
    BuiltinRole(
        "admin",
        "Everything but editing roles: tenants, users, domains, relays, pools, all tenant data.",
        ALL_PERMISSIONS - {"roles.create", "roles.update", "roles.delete"},
    ),
    BuiltinRole(
        "developer",
        "Sends mail and manages API keys, templates and webhooks; reads everything else.",
        (_READS - OPERATOR_PERMISSIONS) | _DEVELOPER_WRITES | {"events.stream.read"},
    ),
    BuiltinRole(
        "viewer",
        "Reads messages, statistics, domains and settings; changes nothing.",
        _READS - {"users.read", "roles.read", "tenants.read"},
    ),
)

BUILTIN_NAMES: frozenset[str] = frozenset(r.name for r in BUILTIN_ROLES)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")


class RoleRuleError(Exception):
    """A role or assignment breaks a rule; the message says which and what to do."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def check_role_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise RoleRuleError(
            f"role name {name!r} must be 2-64 lowercase letters, digits, '-' or '_', "
            "starting with a letter",
            "name",
        )


def check_permissions(requested: Iterable[str], *, held: frozenset[str]) -> frozenset[str]:
    """The permissions of a role being saved: known names, none beyond what the editor holds."""
    wanted = frozenset(requested)
    unknown = sorted(wanted - ALL_PERMISSIONS)
    if unknown:
        raise RoleRuleError(f"unknown permissions: {', '.join(unknown)}", "permissions")
    beyond = sorted(wanted - held)
    if beyond:
        raise RoleRuleError(
            f"cannot grant permissions you do not hold: {', '.join(beyond)}", "permissions"
        )
    return wanted


def check_assignable(role_permissions: frozenset[str], *, held: frozenset[str], role: str) -> None:
    """A user may give another user a role only if it grants nothing they lack themselves."""
    beyond = sorted(role_permissions - held)
    if beyond:
        raise RoleRuleError(
            f"role {role!r} grants permissions you do not hold ({', '.join(beyond[:5])}"
            f"{', …' if len(beyond) > 5 else ''}); ask an owner to assign it",
            "role",
        )


def key_scopes(permissions: frozenset[str]) -> frozenset[str]:
    """The part of a person's permissions an API key they create may carry."""
    return permissions & ALL_SCOPES


def permission_groups(permissions: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Permissions grouped by their first word, for the role editor and key form."""
    groups: dict[str, list[str]] = {}
    for name in sorted(permissions):
        groups.setdefault(name.split(".", 1)[0], []).append(name)
    return sorted(groups.items())
