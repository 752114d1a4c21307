"""``postyard doctor`` and ``postyard backup`` run as an operator runs them.

The doctor subprocess resolves through the test DNS server (``dns_nameservers``),
so each DNS fact is a record the test published or left out.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.api.domains import records_for
from appliance.config import load_config
from appliance.domain.dkim_keys import DkimAlgorithm, generate_key_pair
from appliance.domain.dns_records import RecordKind
from appliance.domain.secret_box import SecretBox
from appliance.store.domains import StoredDkimKey
from appliance.store.store import Store
from tests.support.dns_fixtures import dns_server  # noqa: F401
from tests.support.dns_server import DnsServer, txt

POSTYARD = [sys.executable, "-m", "appliance.cli"]
BOX = SecretBox([SecretBox.generate_key()])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTYARD_")}
    env.pop("SMTP_MAX_RETRIES", None)
    env.pop("SMTP_RETRY_BASE_DELAY", None)
    return {**env, **extra}


def _key(selector: str) -> StoredDkimKey:
    pair = generate_key_pair(DkimAlgorithm.ED25519_SHA256, selector=selector)
    return StoredDkimKey(
        pair.selector, pair.algorithm, BOX.encrypt(pair.private_key_pem), pair.public_txt
    )


def _certificate(tmp: Path, *, expired: bool, other_key: bool = False) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.good.test")])
    now = dt.datetime.now(dt.UTC)
    start, end = (
        (now - dt.timedelta(days=30), now - dt.timedelta(days=1))
        if expired
        else (now - dt.timedelta(days=1), now + dt.timedelta(days=90))
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(key, hashes.SHA256())
    )
    pem_key = ec.generate_private_key(ec.SECP256R1()) if other_key else key
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        pem_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def _doctor(env: dict[str, str]) -> tuple[int, dict[str, dict[str, str]], str]:
    proc = await trio.run_process(
        [*POSTYARD, "doctor", "--json"],
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    return proc.returncode, {r["check"]: r for r in lines}, proc.stderr.decode()


async def _backup(dest: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = await trio.run_process(
        [*POSTYARD, "backup", str(dest)],
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


@pytest.fixture
async def setup(
    tmp_path: Path,
    dns_server: DnsServer,  # noqa: F811
) -> tuple[dict[str, str], Store]:
    data = tmp_path / "data"
    data.mkdir()
    env = _env(
        POSTYARD_DATA_DIR=str(data),
        POSTYARD_DNS_NAMESERVERS=dns_server.address,
        POSTYARD_OUTBOUND_IPS="127.0.0.2,127.0.0.3,127.0.0.4",
        POSTYARD_HOSTNAME="mail.good.test",
        POSTYARD_HTTP_LISTEN="127.0.0.1:0",
        POSTYARD_INBOUND_LISTEN="127.0.0.1:0",
        POSTYARD_SUBMISSION_LISTEN="127.0.0.1:0",
    )
    config = load_config(environ=env)
    store = await Store.open(config.effective_database_url, pool_size=1)
    tenant = await store.tenants.create("T")
    zones = dns_server.zones
    for name, selector in (("good.test", "py20260101good"), ("broken.test", "py20260101brok")):
        domain = await store.domains.create(
            tenant_id=tenant.id, name=name, ownership_token="tok", dkim=_key(selector)
        )
        for r in records_for(config, domain):
            if name == "broken.test" and r.kind is RecordKind.DKIM:
                continue
            value = r.value
            if name == "broken.test" and r.kind is RecordKind.SPF:
                value = "v=spf1 include:_spf.elsewhere.test -all"
            if r.type == "MX":
                zones.set(r.host, "MX", f"{r.priority} {value}.")
            else:
                zones.set(r.host, "TXT", txt(value))
    # 127.0.0.2: forward-confirmed; .3: PTR name points elsewhere; .4: no PTR at all.
    zones.set("2.0.0.127.in-addr.arpa", "PTR", "mail.good.test.")
    zones.set("mail.good.test", "A", "127.0.0.2")
    zones.set("3.0.0.127.in-addr.arpa", "PTR", "mail.wrong.test.")
    zones.set("mail.wrong.test", "A", "127.0.0.9")
    return env, store


async def test_doctor_reports_each_problem_and_fails(
    tmp_path: Path, setup: tuple[dict[str, str], Store]
) -> None:
    env, store = setup
    cert, key = _certificate(tmp_path, expired=True)
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    closed = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    closed_port = closed.socket.getsockname()[1]
    await closed.aclose()
    tenant = (await store.tenants.all())[0]
    up = await store.webhooks.create(tenant_id=tenant.id, url=f"http://127.0.0.1:{port}/hook")
    down = await store.webhooks.create(
        tenant_id=tenant.id, url=f"http://127.0.0.1:{closed_port}/hook"
    )
    try:
        env = {
            **env,
            "POSTYARD_SUBMISSION_LISTEN": f"127.0.0.1:{port}",
            "POSTYARD_TLS_CERT_FILE": str(cert),
            "POSTYARD_TLS_KEY_FILE": str(key),
        }
        code, checks, stderr = await _doctor(env)
    finally:
        await listener.aclose()
        store.close()
    assert code == 1, stderr
    verdict = {name: c["verdict"] for name, c in checks.items()}
    assert verdict["data directory"] == "OK"
    assert verdict["database"] == "OK" and verdict["database schema"] == "OK"
    assert verdict["listen http_listen"] == "OK"
    assert verdict["listen submission_listen"] == "FAIL"
    assert "in use" in checks["listen submission_listen"]["detail"]
    for kind in ("dkim", "spf", "dmarc", "return_path_mx", "return_path_spf", "ownership"):
        assert verdict[f"dns good.test {kind}"] == "OK", checks[f"dns good.test {kind}"]
    assert verdict["dns broken.test dkim"] == "FAIL"
    assert "py20260101brok._domainkey.broken.test" in checks["dns broken.test dkim"]["fix"]
    assert verdict["dns broken.test spf"] == "FAIL"
    assert verdict["dns broken.test dmarc"] == "OK"
    assert verdict["reverse dns 127.0.0.2"] == "OK"
    assert verdict["reverse dns 127.0.0.3"] == "FAIL"
    assert "mail.wrong.test" in checks["reverse dns 127.0.0.3"]["detail"]
    assert verdict["reverse dns 127.0.0.4"] == "FAIL"
    assert verdict["tls certificate"] == "FAIL"
    assert "expired" in checks["tls certificate"]["detail"]
    assert verdict[f"webhook {up.id}"] == "OK"
    assert verdict[f"webhook {down.id}"] == "FAIL"
    assert f"/v3/user/webhooks/{down.id}/deliveries" in checks[f"webhook {down.id}"]["fix"]


async def test_doctor_passes_a_good_setup_and_catches_a_mismatched_key(
    tmp_path: Path, setup: tuple[dict[str, str], Store]
) -> None:
    env, store = setup
    try:
        for tenant in await store.tenants.all():
            for domain in await store.domains.for_tenant(tenant.id):
                if domain.name == "broken.test":
                    await store.domains.delete(tenant.id, domain.id)
    finally:
        store.close()
    cert, key = _certificate(tmp_path, expired=False)
    env = {
        **env,
        "POSTYARD_OUTBOUND_IPS": "127.0.0.2",
        "POSTYARD_TLS_CERT_FILE": str(cert),
        "POSTYARD_TLS_KEY_FILE": str(key),
    }
    code, checks, stderr = await _doctor(env)
    assert code == 0, (checks, stderr)
    assert all(c["verdict"] == "OK" for c in checks.values()), checks
    assert "dns good.test dkim" in checks and "reverse dns 127.0.0.2" in checks

    other = tmp_path / "other"
    other.mkdir()
    _, wrong_key = _certificate(other, expired=False, other_key=True)
    code, checks, _ = await _doctor({**env, "POSTYARD_TLS_KEY_FILE": str(wrong_key)})
    assert code == 1
    assert checks["tls certificate"]["verdict"] == "FAIL"
    assert "not the private key" in checks["tls certificate"]["detail"]


async def test_doctor_exits_zero_when_nothing_fails(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env(
        POSTYARD_DATA_DIR=str(data),
        POSTYARD_HTTP_LISTEN="127.0.0.1:0",
        POSTYARD_INBOUND_LISTEN="127.0.0.1:0",
        POSTYARD_SUBMISSION_LISTEN="127.0.0.1:0",
        POSTYARD_DNS_NAMESERVERS="127.0.0.1:53",
    )
    await trio.run_process([*POSTYARD, "init"], env=env, capture_stdout=True, capture_stderr=True)
    code, checks, stderr = await _doctor(env)
    assert code == 0, (checks, stderr)
    assert checks["reverse dns"]["verdict"] == "WARN"  # outbound_ips unset
    assert checks["tls certificate"]["verdict"] == "WARN"


async def test_doctor_without_a_store_says_to_init(tmp_path: Path) -> None:
    env = _env(POSTYARD_DATA_DIR=str(tmp_path / "nothing"), POSTYARD_HTTP_LISTEN="127.0.0.1:0")
    code, checks, _ = await _doctor(env)
    assert code == 1
    assert "postyard init" in checks["data directory"]["fix"]
    assert checks["database"]["verdict"] == "FAIL"


async def test_backup_of_a_live_sqlite_store_has_the_same_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env(POSTYARD_DATA_DIR=str(data))
    config = load_config(environ=env)
    store = await Store.open(config.effective_database_url, pool_size=1)
    try:
        for i in range(5):
            await store.tenants.create(f"tenant {i}")
        dest = tmp_path / "copy.db"
        out = await _backup(dest, env)
        assert out.returncode == 0, out.stderr
        live = sorted((t.id, t.name) for t in await store.tenants.all())
    finally:
        store.close()
    copy = sqlite3.connect(dest)
    try:
        rows = sorted(copy.execute("SELECT id, name FROM tenants").fetchall())
    finally:
        copy.close()
    assert rows == live and len(rows) == 5

    again = await _backup(dest, env)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_backup_of_postgresql_points_to_pg_dump(tmp_path: Path) -> None:
    env = _env(POSTYARD_DATABASE_URL="postgresql+psycopg://postgres:secret@127.0.0.1:5432/postyard")
    out = subprocess.run(
        [*POSTYARD, "backup", str(tmp_path / "x")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "pg_dump" in out.stderr and "secret" not in out.stderr
