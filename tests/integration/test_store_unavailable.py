"""A database that stops answering gives API clients 503 with Retry-After, not a 500."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.appliance import appliance_config, run_appliance
from tests.support.sending import verified_domain


def _replace_with_a_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()  # not a database any more


def _remove_folder(path: Path) -> None:
    path.rmdir()


async def test_mail_send_answers_503_while_the_store_is_unavailable(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with run_appliance(appliance_config(tmp_path / "data", sqlite_url)) as app:
        await verified_domain(app, "shop.test")
        body = {
            "personalizations": [{"to": [{"email": "a@example.org"}]}],
            "from": {"email": "app@shop.test"},
            "subject": "s",
            "content": [{"type": "text/plain", "value": "x"}],
        }
        async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth()) as http:
            assert (await http.post("/v3/mail/send", json=body)).status_code == 202
            # The SQLite file vanishes underneath (a lost volume): every write fails.
            app.ctx.store.db.writer.dispose()
            database = Path(sqlite_url.removeprefix("sqlite:///"))
            _replace_with_a_folder(database)
            r = await http.post("/v3/mail/send", json=body)
            _remove_folder(database)
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "5"
    (error,) = r.json()["errors"]
    assert "Idempotency-Key" in error["help"]
