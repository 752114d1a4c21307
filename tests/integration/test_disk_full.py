"""Disk full on the SQLite volume: accepted mail is kept, new mail gets a clear error, and the
appliance takes mail again once space is freed.

The volume is a real 6 MiB tmpfs mounted for the test (as root) and filled
with a file; the second variant (and the first where mounting is not
possible) fills the database itself with SQLite's ``PRAGMA max_page_count``
on the writer connection (SQLITE_FULL either way). HTTP answers 507 in SendGrid's error shape, SMTP
submission ``452 4.3.1``. PostgreSQL's disk_full (SQLSTATE 53100) is raised by
a real server and must come out as the same typed error.
"""

from __future__ import annotations

import errno
import os
import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import trio

from appliance.store.database import Database, StoreFull
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.sending import verified_domain

DOMAIN = "mail.example.test"
VOLUME_BYTES = 6 * 1024 * 1024
BODY = "x" * 20_000  # per request: the volume fills in tens of requests


@dataclass
class Volume:
    """Where the data directory lives and how to fill and free it."""

    path: Path
    tmpfs: bool
    filler: Path | None = None

    def describe(self) -> str:
        return "tmpfs" if self.tmpfs else "max_page_count"


@contextmanager
def small_volume(tmp_path: Path, way: str) -> Iterator[Volume]:
    """A 6 MiB tmpfs when ``way`` is "tmpfs" and mounting works, else a plain directory whose
    database is capped by max_page_count."""
    mount_point = tmp_path / "volume"
    mount_point.mkdir()
    mounted = False
    if way == "tmpfs" and os.geteuid() == 0 and shutil.which("mount"):
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={VOLUME_BYTES}", "tmpfs", str(mount_point)],
            capture_output=True,
        )
        mounted = result.returncode == 0
    try:
        yield Volume(mount_point, tmpfs=mounted)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the file system says ENOSPC."""
    chunk = b"\0" * 65536
    with path.open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise


async def make_full(app: RunningAppliance, volume: Volume) -> None:
    if volume.tmpfs:
        volume.filler = volume.path / "filler"
        await trio.to_thread.run_sync(fill, volume.filler)
        return

    def cap(conn: sa.Connection) -> None:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        conn.exec_driver_sql(f"PRAGMA max_page_count = {int(pages) + 8}")

    await app.ctx.store.db.write(cap)


async def free_space(app: RunningAppliance, volume: Volume) -> None:
    if volume.filler is not None:
        volume.filler.unlink()
        return
    await app.ctx.store.db.write(
        lambda conn: conn.exec_driver_sql("PRAGMA max_page_count = 1073741823")
    )


def submit(port: int, key: str, recipient: str) -> tuple[int, str]:
    """One message over SMTP submission; the reply to the end of DATA (or to the refusal)."""
    message = EmailMessage()
    message["From"] = f"app@{DOMAIN}"
    message["To"] = recipient
    message["Subject"] = "disk full test"
    message.set_content(BODY)
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as smtp:
        smtp.login("apikey", key)
        try:
            smtp.send_message(message)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error.decode()
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return code, text.decode()
    return 250, ""


def mail(recipient: str) -> dict[str, object]:
    return {
        "personalizations": [{"to": [{"email": recipient}]}],
        "from": {"email": f"app@{DOMAIN}"},
        "subject": "disk full test",
        "content": [{"type": "text/plain", "value": BODY}],
    }


async def queued(app: RunningAppliance) -> int:
    return (await app.ctx.store.messages.count_by_status()).get("QUEUED", 0)


@pytest.mark.parametrize("way", ["tmpfs", "max_page_count"])
async def test_a_full_sqlite_volume_refuses_new_mail_clearly_keeps_accepted_and_recovers(
    tmp_path: Path, way: str
) -> None:
    with small_volume(tmp_path, way) as volume:
        data = volume.path / "data"
        config = appliance_config(data, f"sqlite:///{data / 'postyard.db'}")
        async with (
            run_appliance(config, services=("http", "submission")) as app,
            httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=10) as http,
        ):
            await verified_domain(app, DOMAIN)
            port = int(app.ctx.listeners["submission"].rpartition(":")[2])
            accepted = 0
            for i in range(5):
                assert (
                    await http.post("/v3/mail/send", json=mail(f"a{i}@x.test"))
                ).status_code == 202
                accepted += 1
            await make_full(app, volume)

            refusal = None
            for i in range(400):
                response = await http.post("/v3/mail/send", json=mail(f"b{i}@x.test"))
                if response.status_code != 202:
                    refusal = response
                    break
                accepted += 1
            assert refusal is not None, f"the {volume.describe()} volume never filled up"
            print(f"\ndisk full ({volume.describe()}) after {accepted} messages: {refusal.text}")
            assert refusal.status_code == 507, refusal.text
            assert refusal.headers["Retry-After"] == "60"
            (error,) = refusal.json()["errors"]
            assert set(error) == {"message", "field", "help"} and error["field"] is None
            assert "message store is full" in error["message"]
            assert "Free space on the database volume" in error["message"]
            assert "kept" in error["message"] and "free space" in error["help"]

            code, text = await trio.to_thread.run_sync(submit, port, app.api_key, "c@x.test")
            assert code == 452, text
            assert text.startswith("4.3.1 Insufficient system storage"), text

            # Still full: every further request is refused the same way, nothing is half-stored.
            again = await http.post("/v3/mail/send", json=mail("d@x.test"))
            assert again.status_code == 507
            assert await queued(app) == accepted, "mail accepted before the disk filled is kept"
            ready = await http.get("/readyz")
            assert ready.json()["database"]["ok"] is True, "reads still work on a full disk"

            await free_space(app, volume)
            after = await http.post("/v3/mail/send", json=mail("e@x.test"))
            assert after.status_code == 202, after.text
            code, text = await trio.to_thread.run_sync(submit, port, app.api_key, "f@x.test")
            assert code == 250, text
            assert await queued(app) == accepted + 2


@pytest.mark.postgres
async def test_postgresql_disk_full_is_the_typed_store_full_error(tmp_path: Path) -> None:
    from tests.support.databases import fresh_database

    with fresh_database("postgresql", tmp_path) as url:
        db = Database(url)
        try:
            with pytest.raises(StoreFull, match="message store is full"):
                await db.write(
                    lambda conn: conn.exec_driver_sql(
                        "DO $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on "
                        "device' USING ERRCODE = 'disk_full'; END $$"
                    )
                )
            assert await db.read(lambda conn: conn.exec_driver_sql("SELECT 1").scalar()) == 1
        finally:
            db.dispose()
