"""``postyard doctor`` checks the OpenID Connect provider the admin UI logs in with:
discovery document and JWKS reachable from this host, the redirect URI registered."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import trio

from tests.support.oidc_provider import OidcProvider, ProviderUser, open_oidc_provider

POSTYARD = [sys.executable, "-m", "appliance.cli"]
ADMIN_URL = "https://mail.example.test/admin/"
REDIRECT = ADMIN_URL + "oidc/callback"


def _env(data: Path, idp: OidcProvider) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTYARD_")}
    for name in ("ADMIN_URL", "SMTP_MAX_RETRIES", "SMTP_RETRY_BASE_DELAY"):
        env.pop(name, None)
    return {
        **env,
        "POSTYARD_DATA_DIR": str(data),
        "POSTYARD_HTTP_LISTEN": "127.0.0.1:0",
        "POSTYARD_INBOUND_LISTEN": "127.0.0.1:0",
        "POSTYARD_SUBMISSION_LISTEN": "127.0.0.1:0",
        "POSTYARD_DNS_NAMESERVERS": "127.0.0.1:53",
        "ADMIN_URL": ADMIN_URL,
        "POSTYARD_OIDC_ISSUER": idp.issuer,
        "POSTYARD_OIDC_CLIENT_ID": idp.client_id,
        "POSTYARD_OIDC_CLIENT_SECRET": idp.client_secret,
    }


async def _oidc_checks(env: dict[str, str]) -> dict[str, dict[str, str]]:
    proc = await trio.run_process(
        [*POSTYARD, "doctor", "--json"],
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    return {r["check"]: r for r in rows if r["check"].startswith("oidc ")}


async def test_doctor_reports_the_provider_reachable_and_then_each_problem(
    tmp_path: Path,
) -> None:
    user = ProviderUser("ann", "pw", "ann@example.test", ("ops",))
    async with open_oidc_provider([user], redirect_uris=[REDIRECT]) as idp:
        env = _env(tmp_path / "data", idp)
        await trio.run_process(
            [*POSTYARD, "init"], env=env, capture_stdout=True, capture_stderr=True
        )

        checks = await _oidc_checks(env)
        assert {n: c["verdict"] for n, c in checks.items()} == {
            "oidc discovery": "OK",
            "oidc jwks": "OK",
            "oidc redirect_uri": "OK",
        }, checks
        assert idp.kid in checks["oidc jwks"]["detail"]
        assert REDIRECT in checks["oidc redirect_uri"]["detail"]

        idp.serve_jwks = False
        idp.register_redirect_uri("https://elsewhere.test/admin/oidc/callback", only=True)
        checks = await _oidc_checks(env)
        assert checks["oidc discovery"]["verdict"] == "OK"
        jwks = checks["oidc jwks"]
        assert jwks["verdict"] == "FAIL"
        assert jwks["detail"] == f"JWKS unreachable: {idp.url}/jwks answered 503"
        assert "outbound HTTPS" in jwks["fix"]
        redirect = checks["oidc redirect_uri"]
        assert redirect["verdict"] == "FAIL"
        assert redirect["detail"].startswith("invalid redirect_uri")
        assert f"register exactly {REDIRECT}" in redirect["fix"]

    # The provider is gone altogether: discovery fails, naming its URL.
    checks = await _oidc_checks(env)
    assert list(checks) == ["oidc discovery"]
    assert checks["oidc discovery"]["verdict"] == "FAIL"
    assert f"{idp.url}/.well-known/openid-configuration" in checks["oidc discovery"]["detail"]
    assert "unreachable" in checks["oidc discovery"]["detail"]


async def test_doctor_says_nothing_about_oidc_when_it_is_not_configured(tmp_path: Path) -> None:
    async with open_oidc_provider([]) as idp:
        env = _env(tmp_path / "data", idp)
    env.pop("POSTYARD_OIDC_ISSUER")
    await trio.run_process([*POSTYARD, "init"], env=env, capture_stdout=True, capture_stderr=True)
    assert await _oidc_checks(env) == {}
