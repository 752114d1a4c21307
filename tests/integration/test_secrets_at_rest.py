"""No secret is in the database in clear: API keys and passwords as hashes, the rest encrypted.

Through the HTTP API (and the admin sign-in for the person's own TOTP) the test
makes a domain (DKIM private key), a relay with a password, a signed webhook
(signing private key), an API key, and turns on TOTP for the admin user; then
it reads the raw database, the SQLite file with its WAL, or every text and
binary column of every table on PostgreSQL, and finds none of the secrets.
The control: each secret's stored ciphertext decrypts back to it, so the
search looks for the right bytes.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyotp
import pytest
import sqlalchemy as sa

from appliance.store.domains import signing_material
from tests.support.admin_session import signed_in
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance


def _pem_body_lines(pem: bytes) -> list[bytes]:
    lines = [line for line in pem.strip().splitlines() if not line.startswith(b"-----")]
    assert len(lines) >= 2, pem
    return [b"".join(lines), *lines[:-1]]  # the whole body, and each full-width line


async def _sqlite_bytes(database_url: str) -> list[bytes]:
    path = Path(database_url.removeprefix("sqlite:///"))
    return [p.read_bytes() for p in path.parent.glob(path.name + "*")]  # with -wal and -shm


async def _postgres_values(app: RunningAppliance) -> list[bytes]:
    query = sa.text(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND data_type IN "
        "('text', 'character varying', 'bytea', 'json', 'jsonb', 'character')"
    )

    def read(conn: sa.Connection) -> list[bytes]:
        out: list[bytes] = []
        for table, column, kind in conn.execute(query).all():
            rows = conn.execute(sa.text(f'SELECT "{column}" FROM "{table}"')).scalars()
            for value in rows:
                if value is None:
                    continue
                out.append(bytes(value) if kind == "bytea" else str(value).encode())
        return out

    return await app.ctx.store.db.read(read)


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[RunningAppliance]:
    config = appliance_config(tmp_path / "data", database_url, outbound_ips=("192.0.2.10",))
    async with run_appliance(config) as running:
        yield running


async def test_no_secret_is_stored_in_clear(app: RunningAppliance, database_url: str) -> None:
    store = app.ctx.store
    relay_password = f"relay-pw-{secrets.token_urlsafe(12)}"
    totp_secret = pyotp.random_base32()
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=15) as http:
        r = await http.post("/api/admin/domains", json={"domain": "secret.example.test"})
        assert r.status_code == 201, r.text
        domain_id = r.json()["id"]
        r = await http.post(
            "/api/admin/relays",
            json={"name": "smarthost", "host": "smtp.example.test", "username": "u",
                  "password": relay_password},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        r = await http.post("/v3/user/webhooks", json={"url": "https://hooks.example.test/"})
        assert r.status_code in (200, 201), r.text
        webhook_id = r.json()["id"]
        r = await http.patch(
            f"/v3/user/webhooks/event/settings/signed/{webhook_id}", json={"enabled": True}
        )
        assert r.status_code == 200 and r.json()["public_key"], r.text
        r = await http.post("/v3/api_keys", json={"name": "ci", "scopes": ["mail.send"]})
        assert r.status_code == 201, r.text
        new_key = r.json()["api_key"]
    async with signed_in(app) as admin:
        code = pyotp.TOTP(totp_secret).now()
        r = await admin.post("/api/admin/account/totp", json={"secret": totp_secret, "code": code})
        assert r.status_code == 200, r.text

    # The control: what the store keeps decrypts to the secrets searched for.
    domain = await store.domains.get(app.init.tenant_id, domain_id)
    assert domain is not None
    dkim_pem = signing_material(domain, app.ctx.secrets).private_key_pem
    hook = await store.webhooks.get(app.init.tenant_id, webhook_id)
    assert hook is not None and hook.signing_private_key is not None
    webhook_pem = app.ctx.secrets.decrypt(hook.signing_private_key)
    (relay,) = await store.relays.list()
    assert relay.password is not None
    assert app.ctx.secrets.decrypt(relay.password).decode() == relay_password
    admin_user = await store.users.get_by_email(app.init.admin_email)
    assert admin_user is not None and admin_user.totp_secret is not None
    assert app.ctx.secrets.decrypt(admin_user.totp_secret).decode() == totp_secret

    needles = {
        "bootstrap API key secret": app.api_key.rpartition(".")[2].encode(),
        "new API key secret": new_key.rpartition(".")[2].encode(),
        "relay password": relay_password.encode(),
        "admin password": app.init.admin_password.encode(),
        "TOTP secret": totp_secret.encode(),
        **{f"DKIM key line {i}": v for i, v in enumerate(_pem_body_lines(dkim_pem))},
        **{f"webhook key line {i}": v for i, v in enumerate(_pem_body_lines(webhook_pem))},
    }
    if database_url.startswith("sqlite"):
        haystacks = await _sqlite_bytes(database_url)
    else:
        haystacks = await _postgres_values(app)
    public_id = new_key.split(".")[1].encode()  # public, stored in clear: the search works
    assert any(public_id in h for h in haystacks), "the search did not read the api_keys table"
    found = [name for name, needle in needles.items() if any(needle in h for h in haystacks)]
    assert found == [], f"in clear in the database: {found}"
