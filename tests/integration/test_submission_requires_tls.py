"""Submission requires AUTH, and AUTH requires TLS off the host.

A listener other than loopback gets AUTH only after STARTTLS (``AFTER_TLS``);
without a certificate it does not listen at all. With a certificate, a clear
text session is never offered AUTH, every AUTH form is refused ``530 5.7.0``
before any credential is looked at, and MAIL before AUTH is ``530 5.7.0``; the
same connection then upgrades and authenticates (so the refusals are about
TLS, not a server that refuses everything). The certificated case runs on
127.0.0.1, where the certificate, not the address, decides the mode.
"""

from __future__ import annotations

import base64
import smtplib
from pathlib import Path

import pytest
import trio

from appliance.config import Listen
from appliance.protocols.smtp_server import AuthMode
from appliance.services.submission import NO_TLS, auth_mode
from tests.support.appliance import appliance_config, run_appliance
from tests.support.tls_certs import make_self_signed

NOT_LOOPBACK = ["0.0.0.0", "::", "192.0.2.25", "2001:db8::25", "mail.example.test"]


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_a_listener_off_loopback_offers_auth_only_after_tls(tmp_path: Path, host: str) -> None:
    config = appliance_config(tmp_path, "sqlite://")
    listen = Listen(host, 587)
    assert auth_mode(config, listen, tls=True) is AuthMode.AFTER_TLS
    assert auth_mode(config, listen, tls=False) is None  # not at all: it does not listen


async def test_without_a_certificate_a_listener_off_loopback_does_not_listen(
    tmp_path: Path, sqlite_url: str
) -> None:
    # Nothing is bound: the service refuses to start a clear-text AUTH listener.
    config = appliance_config(tmp_path / "data", sqlite_url, submission_listen="0.0.0.0:0")
    async with run_appliance(config, services=("http", "submission")) as app:
        with trio.fail_after(5):
            while "disabled" not in app.ctx.health.services["submission"].details:
                await trio.sleep(0.05)
        details = app.ctx.health.services["submission"].details
        assert details["listening"] == [] and details["disabled"] == NO_TLS
        assert "submission" not in app.ctx.listeners


async def test_auth_is_refused_before_starttls_and_mail_before_auth(
    tmp_path: Path, sqlite_url: str
) -> None:
    cert = make_self_signed(tmp_path / "tls")
    config = appliance_config(
        tmp_path / "data",
        sqlite_url,
        tls_cert_file=str(cert.cert_path),
        tls_key_file=str(cert.key_path),
    )
    async with run_appliance(config, services=("http", "submission")) as app:
        port = int(app.ctx.listeners["submission"].rpartition(":")[2])
        plain = base64.b64encode(f"\0apikey\0{app.api_key}".encode()).decode()

        def scenario() -> dict[str, object]:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as s:
                s.ehlo()
                seen: dict[str, object] = {
                    "offered": s.has_extn("auth"),
                    "starttls": s.has_extn("starttls"),
                    "mail": s.mail("app@example.test"),
                    "plain": s.docmd("AUTH", f"PLAIN {plain}"),
                    "plain_continued": s.docmd("AUTH", "PLAIN"),
                    "login": s.docmd("AUTH", "LOGIN"),
                    "cram": s.docmd("AUTH", "CRAM-MD5"),
                    "mail_again": s.mail("app@example.test"),
                }
                s.starttls(context=cert.client_context())
                s.ehlo()
                seen["offered_after_tls"] = s.has_extn("auth")
                seen["login_after_tls"] = s.login("apikey", app.api_key)[0]
                return seen

        seen = await trio.to_thread.run_sync(scenario)
    assert seen["offered"] is False and seen["starttls"] is True
    tls_first = (530, b"5.7.0 Must issue a STARTTLS command first")
    assert seen["plain"] == seen["plain_continued"] == seen["login"] == seen["cram"] == tls_first
    assert seen["mail"] == seen["mail_again"] == (530, b"5.7.0 Authentication required")
    assert seen["offered_after_tls"] is True and seen["login_after_tls"] == 235
