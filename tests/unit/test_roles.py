"""The built-in roles' permissions and the rules for granting them (pure)."""

from __future__ import annotations

import pytest

from appliance.domain.roles import (
    ALL_PERMISSIONS,
    BUILTIN_ROLES,
    OPERATOR_PERMISSIONS,
    RoleRuleError,
    check_assignable,
    check_permissions,
    check_role_name,
    key_scopes,
)
from appliance.domain.scopes import ALL_SCOPES

ROLES = {r.name: r.permissions for r in BUILTIN_ROLES}


def test_owner_holds_everything_and_admin_all_but_editing_roles() -> None:
    assert ROLES["owner"] == ALL_PERMISSIONS
    assert ALL_PERMISSIONS - ROLES["admin"] == {"roles.create", "roles.update", "roles.delete"}


def test_viewer_only_reads_and_never_sees_people() -> None:
    assert all(p.endswith(".read") for p in ROLES["viewer"])
    assert not ROLES["viewer"] & {"users.read", "roles.read", "tenants.read"}
    assert {"messages.read", "stats.read", "domains.read"} <= ROLES["viewer"]


def test_developer_sends_and_manages_keys_but_not_people_or_domains() -> None:
    dev = ROLES["developer"]
    assert {"mail.send", "api_keys.create", "templates.update", "events.stream.read"} <= dev
    assert not dev & OPERATOR_PERMISSIONS
    assert "domains.create" not in dev and "domains.read" in dev


def test_operator_permissions_are_never_api_scopes() -> None:
    assert not OPERATOR_PERMISSIONS & ALL_SCOPES
    assert key_scopes(ALL_PERMISSIONS) == ALL_SCOPES


def test_nobody_grants_what_they_lack() -> None:
    held = ROLES["admin"]
    assert check_permissions(["messages.read"], held=held) == {"messages.read"}
    with pytest.raises(RoleRuleError, match=r"do not hold: roles\.update"):
        check_permissions(["roles.update"], held=held)
    with pytest.raises(RoleRuleError, match=r"unknown permissions: nope\.read"):
        check_permissions(["nope.read"], held=held)
    with pytest.raises(RoleRuleError, match="ask an owner"):
        check_assignable(ROLES["owner"], held=held, role="owner")
    check_assignable(ROLES["viewer"], held=held, role="viewer")


@pytest.mark.parametrize("name", ["a", "Auditor", "1st", "with space", "x" * 65])
def test_role_names_are_short_lowercase_words(name: str) -> None:
    with pytest.raises(RoleRuleError):
        check_role_name(name)
