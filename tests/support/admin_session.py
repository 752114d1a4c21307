"""Signing in to the admin UI from a test: an httpx client holding the session cookie.

``signed_in(app)`` posts the sign-in form as a browser does (CSRF cookie and
field) and returns a client whose requests carry the session cookie and the
session's CSRF token, so it calls the JSON API as that person.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.support.appliance import RunningAppliance

_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_LOGIN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    """Post the sign-in form; the response after redirects (the dashboard on success)."""
    form = await client.get("/admin/login")
    found = _LOGIN_CSRF.search(form.text)
    assert found, form.text
    return await client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": found.group(1)},
        follow_redirects=True,
    )


@asynccontextmanager
async def signed_in(
    app: RunningAppliance, email: str | None = None, password: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=15) as client:
        page = await sign_in(
            client, email or app.init.admin_email, password or app.init.admin_password
        )
        # Signed in when sent on from the form (the dashboard may still be 403 for the role).
        assert page.url.path != "/admin/login", page.text
        page = await client.get("/admin/account")
        token = _CSRF_META.search(page.text)
        assert token, "signed in, but the page has no CSRF token"
        client.headers["X-CSRF-Token"] = token.group(1)
        yield client
