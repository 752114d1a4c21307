"""Every endpoint × every scope × two tenants: only the right scope of the right tenant gets in.

The endpoints come from the app's own url_map and each handler's required
scope from ``authz.required_scope_of``, so a route added later is in the
matrix without editing this file. A route that neither declares a scope
(``@requires``) nor is listed in ``PUBLIC`` below makes the test fail.

For each endpoint and method:

- a key holding exactly the required scope gets past authentication (any
  answer but 401/403);
- a key holding every other scope, except those that grant it on their own
  (``suppression.read`` covers ``suppression.bounces.read``), gets 403
  ``Missing required scope: <scope>``;
- no key gets 401.

Then tenant B's objects, made through the API with B's key, are looked up,
changed and deleted with tenant A's full-access key on every route that takes
an id: each answer is 404, and B still sees its objects afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.api.app import create_app
from appliance.api.authz import required_scope_of
from appliance.domain.api_key_format import ApiKeySecret
from appliance.domain.passwords import hash_password
from appliance.domain.roles import ALL_PERMISSIONS, OPERATOR_PERMISSIONS
from appliance.domain.scopes import ALL_SCOPES, grants
from appliance.provisioning import create_full_access_key
from appliance.store.store import Store
from tests.support.admin_session import signed_in
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance

# Routes that take no API key, each on purpose.
PUBLIC = {
    "/healthz": "liveness probe for the supervisor and load balancers",
    "/readyz": "readiness probe",
    "/metrics": "Prometheus scrape endpoint (bind it to a private interface)",
    "/openapi.json": "the API description",
    "/t/o/<token>": "open pixel: the signed token is the credential",
    "/t/c/<token>": "click redirect: the signed token is the credential",
    "/t/u/<token>": "unsubscribe page and RFC 8058 one-click: the signed token",
}
# The admin UI's HTML pages use the session cookie and CSRF, not API keys
# (their own tests cover them); the JSON routes under /api/admin/ are in the matrix.
ADMIN_HTML_PREFIX = "/admin/"
# Websocket routes authenticate in the handshake, not through an HTTP method.
WEBSOCKET_AUTH = {"/v3/events/stream": "Bearer key checked in the websocket handshake"}

# Routes whose objects belong to the appliance, not to a tenant: an operator key
# of any tenant manages them, so there is no other tenant to hide them from.
APPLIANCE_WIDE = (
    "/api/admin/relays",
    "/api/admin/ip_pools",
    "/api/admin/tenants",
    "/api/admin/users",
    "/api/admin/roles",
)

PLACEHOLDER = {"email": "nobody@example.com", "group_id": "1"}

# Valid bodies, so that a change of another tenant's object fails on the lookup, not the body.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/v3/api_keys/<key_id>"): {"name": "a"},
    ("PUT", "/v3/api_keys/<key_id>"): {"name": "a", "scopes": ["mail.send"]},
    ("PATCH", "/api/admin/domains/<domain_id>"): {"is_active": False},
    ("POST", "/v3/templates/<template_id>/versions"): {"name": "v", "subject": "s"},
    ("POST", "/suppressions"): {"recipient_emails": ["b-only@example.org"]},
    ("POST", "/suppressions/search"): {"recipient_emails": ["b-only@example.org"]},
    ("PATCH", "/v3/user/webhooks/event/settings/signed/<webhook_id>"): {"enabled": True},
}
# SendGrid answers these for another tenant's id exactly as for an id that never existed.
SAME_AS_UNKNOWN = {"/v3/mail/batch/<batch_id>": 400}
# Ids this test does not make for tenant B (they need delivery or inbound mail);
# their tenant scoping is tested with those paths.
NOT_MADE_HERE = {
    "message_id": "tests/integration/test_mail_send.py, test_delivery.py",
    "report_id": "tests/integration/test_inbound_server.py (reports per tenant)",
    "capture_id": "tests/integration/test_capture_mode.py",
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    rule: str
    method: str
    scope: str | None  # None: any valid key

    def path(self, values: dict[str, str] | None = None) -> str:
        return fill(self.rule, values or {})

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"


def fill(rule: str, values: dict[str, str]) -> str:
    out, rest = "", rule
    while "<" in rest:
        head, _, tail = rest.partition("<")
        spec, _, rest = tail.partition(">")
        name = spec.rpartition(":")[2]
        out += head + values.get(name, PLACEHOLDER.get(name, "x0"))
    return out + rest


def endpoints(ctx: Any) -> Iterator[Endpoint]:
    app = create_app(ctx)
    unguarded = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(ADMIN_HTML_PREFIX):
            continue
        if rule.websocket:
            assert rule.rule in WEBSOCKET_AUTH, f"websocket {rule.rule}: say how it authenticates"
            continue
        handler = app.view_functions[rule.endpoint]
        if rule.rule in PUBLIC:
            assert not hasattr(handler, "_postyard_scope"), f"{rule.rule} is listed as public"
            continue
        if not hasattr(handler, "_postyard_scope"):
            unguarded.append(rule.rule)
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield Endpoint(rule.rule, method, required_scope_of(handler))
    assert not unguarded, (
        f"routes without @requires(scope) and not listed as public: {sorted(unguarded)}"
    )


async def make_key(store: Store, tenant_id: str, held: frozenset[str]) -> str:
    secret = ApiKeySecret.generate()
    await store.api_keys.create(
        key_id=secret.key_id,
        tenant_id=tenant_id,
        name="matrix",
        scopes=held,
        secret_hash=secret.secret_hash(),
    )
    return secret.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    http: httpx.AsyncClient, endpoint: Endpoint, headers: dict[str, str], path: str | None = None
) -> httpx.Response:
    body: dict[str, Any] | None = None
    if endpoint.method in ("POST", "PUT", "PATCH", "DELETE"):
        body = BODIES.get((endpoint.method, endpoint.rule), {})
        for (method, suffix), value in BODIES.items():
            if method == endpoint.method and endpoint.rule.endswith(suffix):
                body = value
    return await http.request(endpoint.method, path or endpoint.path(), headers=headers, json=body)


@pytest.fixture
async def app(tmp_path: Path, sqlite_url: str) -> Any:
    config = appliance_config(
        tmp_path / "data",
        sqlite_url,
        api_rate_limit=1_000_000,
        admin_login_rate_limit=1_000,
        outbound_ips=("127.0.0.1",),
    )
    async with run_appliance(config) as running:
        yield running


@pytest.mark.slow
async def test_only_the_required_scope_gets_in(app: RunningAppliance) -> None:
    store = app.ctx.store
    tenant = app.init.tenant_id
    routes = [e for e in endpoints(app.ctx) if e.scope not in OPERATOR_PERMISSIONS]
    assert len(routes) > 100
    exact: dict[str | None, str] = {}
    all_but: dict[str, str] = {}
    for scope in {e.scope for e in routes}:
        if scope is None:
            exact[None] = await make_key(store, tenant, frozenset({"stats.read"}))
            continue
        exact[scope] = await make_key(store, tenant, frozenset({scope}))
        others = frozenset(s for s in ALL_SCOPES if not grants(frozenset({s}), scope))
        all_but[scope] = await make_key(store, tenant, others)

    wrong: list[str] = []
    async with httpx.AsyncClient(base_url=app.base_url, timeout=30) as http:
        for endpoint in routes:
            r = await call(http, endpoint, {})
            if r.status_code != 401:
                wrong.append(f"{endpoint} without a key: {r.status_code}")
            r = await call(http, endpoint, bearer(exact[endpoint.scope]))
            # A handler's own 403 (such as "cannot grant scopes the calling key does not
            # hold") comes after authentication; the scope check's 403 names the scope.
            if r.status_code == 401 or "Missing required scope" in r.text:
                wrong.append(f"{endpoint} with exactly {endpoint.scope}: {r.status_code} {r.text}")
            if endpoint.scope is None:
                continue
            r = await call(http, endpoint, bearer(all_but[endpoint.scope]))
            message = r.json()["errors"][0]["message"] if r.status_code == 403 else r.text
            if r.status_code != 403 or message != f"Missing required scope: {endpoint.scope}":
                wrong.append(f"{endpoint} with all but {endpoint.scope}: {r.status_code} {message}")
    assert not wrong, "\n".join(wrong)


async def make_person(store: Store, name: str, permissions: frozenset[str]) -> tuple[str, str]:
    """A user whose custom role grants exactly ``permissions``; (email, password)."""
    await store.roles.create(name, "matrix", permissions)
    email, password = f"{name}@matrix.test", "matrix-password-1"
    await store.users.create(email=email, role=name, password_hash=hash_password(password))
    return email, password


@pytest.mark.slow
async def test_operator_permissions_are_for_people_only(app: RunningAppliance) -> None:
    """users.*, roles.*, tenants.*: a key never gets in (not even one whose row claims the
    permission); a person whose role holds exactly it does; one holding all else does not."""
    store = app.ctx.store
    routes = [e for e in endpoints(app.ctx) if e.scope in OPERATOR_PERMISSIONS]
    assert {e.scope for e in routes} >= {"users.create", "roles.update", "tenants.update"}
    full_key = await create_full_access_key(store, app.init.tenant_id, "full")
    wrong: list[str] = []
    async with httpx.AsyncClient(base_url=app.base_url, timeout=30) as http:
        for n, scope in enumerate(sorted({e.scope for e in routes if e.scope})):
            claimed = await make_key(store, app.init.tenant_id, frozenset({scope}))
            exact = await make_person(store, f"exact{n}", frozenset({scope}))
            others = await make_person(store, f"others{n}", ALL_PERMISSIONS - {scope})
            async with signed_in(app, *exact) as person, signed_in(app, *others) as lacking:
                for endpoint in (e for e in routes if e.scope == scope):
                    for key in (full_key, claimed):
                        r = await call(http, endpoint, bearer(key))
                        if r.status_code != 403 or scope not in r.text:
                            wrong.append(f"{endpoint} with a key: {r.status_code} {r.text}")
                    r = await call(person, endpoint, {})
                    if r.status_code in (401, 403) and "Missing required scope" in r.text:
                        wrong.append(f"{endpoint} as a person with {scope}: {r.text}")
                    r = await call(lacking, endpoint, {})
                    if r.status_code != 403 or f"Missing required scope: {scope}" not in r.text:
                        wrong.append(f"{endpoint} as a person without it: {r.status_code}")
    assert not wrong, "\n".join(wrong)


async def _tenant_b_objects(http: httpx.AsyncClient, key: str) -> dict[str, str]:
    """Objects of tenant B, one of each kind with an id in a path, made through the API."""
    h = bearer(key)

    async def ok(r: httpx.Response) -> dict[str, Any]:
        assert r.status_code < 300, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
        return r.json() if r.content else {}

    ids: dict[str, str] = {}
    ids["key_id"] = (await ok(await http.post("/v3/api_keys", headers=h, json={"name": "b"})))[
        "api_key_id"
    ]
    group = await ok(
        await http.post("/v3/asm/groups", headers=h, json={"name": "b", "description": "b"})
    )
    ids["group_id"] = str(group["id"])
    ids["email"] = "b-only@example.org"
    await ok(
        await http.post(
            f"/v3/asm/groups/{ids['group_id']}/suppressions",
            headers=h,
            json={"recipient_emails": [ids["email"]]},
        )
    )
    await ok(
        await http.post(
            "/v3/asm/suppressions/global", headers=h, json={"recipient_emails": [ids["email"]]}
        )
    )
    template = await ok(
        await http.post("/v3/templates", headers=h, json={"name": "b", "generation": "dynamic"})
    )
    ids["template_id"] = template["id"]
    version = await ok(
        await http.post(
            f"/v3/templates/{template['id']}/versions",
            headers=h,
            json={"name": "v", "subject": "s", "html_content": "<p>x</p>"},
        )
    )
    ids["version_id"] = version["id"]
    hook = await ok(
        await http.post("/v3/user/webhooks", headers=h, json={"url": "http://127.0.0.1:9/b"})
    )
    ids["webhook_id"] = hook["id"]
    domain = await ok(
        await http.post("/api/admin/domains", headers=h, json={"domain": "b.example"})
    )
    ids["domain_id"] = str(domain["id"])
    batch = await ok(await http.post("/v3/mail/batch", headers=h))
    ids["batch_id"] = batch["batch_id"]
    return ids


@pytest.mark.slow
async def test_tenant_a_sees_none_of_tenant_bs_objects(app: RunningAppliance) -> None:
    store = app.ctx.store
    other = await store.tenants.create("Tenant B")
    b_key = await create_full_access_key(store, other.id, "b")
    routes = [e for e in endpoints(app.ctx) if "<" in e.rule]
    wrong: list[str] = []
    async with httpx.AsyncClient(base_url=app.base_url, timeout=30) as http:
        ids = await _tenant_b_objects(http, b_key)
        checked = 0
        for endpoint in routes:
            if endpoint.rule.startswith(APPLIANCE_WIDE) or "<token>" in endpoint.rule:
                continue
            names = {
                part.partition(">")[0].rpartition(":")[2] for part in endpoint.rule.split("<")[1:]
            }
            if names & set(NOT_MADE_HERE):
                continue
            if not names <= set(ids):
                wrong.append(f"{endpoint}: no tenant B object for {sorted(names - set(ids))}")
                continue
            r = await call(http, endpoint, app.auth(), endpoint.path(ids))
            checked += 1
            if endpoint.rule.endswith("<path:email>") and endpoint.method == "GET":
                # SendGrid answers a lookup of an address not on the list with 200 [] / {}.
                if r.status_code not in (200, 404) or ids["email"] in r.text:
                    wrong.append(f"{endpoint}: {r.status_code} {r.text[:200]}")
            elif endpoint.rule in SAME_AS_UNKNOWN:
                if r.status_code != SAME_AS_UNKNOWN[endpoint.rule]:
                    wrong.append(f"{endpoint}: {r.status_code} {r.text[:200]}")
            elif r.status_code not in (404, 204) or (
                r.status_code == 204 and not endpoint.rule.endswith("<path:email>")
            ):
                wrong.append(f"{endpoint}: {r.status_code} {r.text[:200]}")
        assert checked > 30
        h = bearer(b_key)
        still = [
            f"/v3/api_keys/{ids['key_id']}",
            f"/v3/asm/groups/{ids['group_id']}",
            f"/v3/templates/{ids['template_id']}/versions/{ids['version_id']}",
            f"/v3/user/webhooks/{ids['webhook_id']}",
            f"/api/admin/domains/{ids['domain_id']}",
            f"/v3/mail/batch/{ids['batch_id']}",
        ]
        for path in still:
            r = await http.get(path, headers=h)
            if r.status_code != 200:
                wrong.append(f"tenant B lost {path}: {r.status_code}")
        r = await http.get(f"/v3/asm/groups/{ids['group_id']}/suppressions", headers=h)
        if ids["email"] not in r.text:
            wrong.append(f"tenant B's group suppression was removed by A: {r.text}")
        r = await http.get(f"/v3/asm/suppressions/global/{ids['email']}", headers=h)
        if ids["email"] not in r.text:
            wrong.append(f"tenant B's global unsubscribe was removed by A: {r.text}")
    assert not wrong, "\n".join(wrong)


async def test_a_key_over_its_rate_limit_gets_429_with_the_headers(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = appliance_config(tmp_path / "data", sqlite_url, api_rate_limit=3)
    async with run_appliance(config) as running:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=10) as http:
            answers = [await http.get("/v3/scopes", headers=running.auth()) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    over = answers[-1]
    assert over.headers["X-RateLimit-Limit"] == "3"
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert int(over.headers["X-RateLimit-Reset"]) > 0
    assert over.json()["errors"][0]["message"] == "too many requests"
