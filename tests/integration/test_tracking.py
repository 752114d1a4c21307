"""Open pixel, click redirect and one-click unsubscribe, end to end over HTTP (both engines).

Mail is accepted through /v3/mail/send, rendered by the Composer exactly as
delivery does, and the links are taken from the rendered message.
"""

from __future__ import annotations

import re

import httpx

from tests.support.appliance import RunningAppliance
from tests.support.sending import verified_domain
from tests.support.tracking import (
    DOMAIN,
    events_of,
    html_of,
    mail_body,
    path_of,
    rendered,
    send,
    unsubscribe_url,
)


async def test_tracked_mail_opens_clicks_and_refuses_tampered_links(
    appliance_any_db: RunningAppliance,
) -> None:
    app = appliance_any_db
    await verified_domain(app, DOMAIN)
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=10) as http:
        message_id = await send(
            http,
            mail_body(
                "ana@example.org",
                tracking_settings={
                    "click_tracking": {"enable": True},
                    "open_tracking": {"enable": True},
                },
            ),
        )
    html = html_of(await rendered(app, message_id))
    base = re.escape(app.ctx.config.base_url)
    clicks = re.findall(rf'href="({base}/t/c/[^"]+)"', html)
    pixels = re.findall(rf'<img src="({base}/t/o/[^"]+)"', html)
    assert len(clicks) == 1 and len(pixels) == 1
    assert 'href="mailto:help@track.example.test"' in html
    assert 'href="https://shop.example.com/private"' in html
    assert "shop.example.com/sale" not in html  # only inside the signed token

    async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as public:
        r = await public.get(path_of(pixels[0]), headers={"User-Agent": "TestMail/1.0"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/gif" and r.content.startswith(b"GIF89a")
        [opened] = await events_of(app, message_id, "open")
        assert opened.data["useragent"] == "TestMail/1.0" and opened.data["ip"] == "127.0.0.1"
        assert opened.recipient == "ana@example.org"

        r = await public.get(path_of(clicks[0]))
        assert r.status_code == 302
        assert r.headers["location"] == "https://shop.example.com/sale?a=1&b=2"
        [clicked] = await events_of(app, message_id, "click")
        assert clicked.data["url"] == "https://shop.example.com/sale?a=1&b=2"

        token = path_of(clicks[0]).rsplit("/", 1)[1]
        mid, encoded, mac = token.split(".")
        evil = "aHR0cHM6Ly9ldmlsLmV4YW1wbGUv"  # base64url of https://evil.example/
        for bad in (f"{mid}.{evil}.{mac}", f"{mid}.{encoded}.{mac[:-2]}xx", "nonsense"):
            r = await public.get(f"/t/c/{bad}")
            assert r.status_code == 404 and "location" not in r.headers
            assert "not valid" in r.text
        r = await public.get(f"/t/o/{mid}.AAAAAAAAAAAAAAAAAAAAAA")
        assert r.status_code == 404
    assert len(await events_of(app, message_id, "click")) == 1
    assert len(await events_of(app, message_id, "open")) == 1


async def test_untracked_mail_has_no_tracking_links(appliance: RunningAppliance) -> None:
    await verified_domain(appliance, DOMAIN)
    async with httpx.AsyncClient(
        base_url=appliance.base_url, headers=appliance.auth(), timeout=10
    ) as http:
        message_id = await send(
            http,
            mail_body(
                "ana@example.org",
                tracking_settings={"click_tracking": {"enable": False}},
            ),
        )
    html = html_of(await rendered(appliance, message_id))
    assert "/t/c/" not in html and "/t/o/" not in html
    assert 'href="https://shop.example.com/sale?a=1&amp;b=2"' in html


async def test_one_click_unsubscribe_suppresses_and_next_send_is_dropped(
    appliance_any_db: RunningAppliance,
) -> None:
    app = appliance_any_db
    await verified_domain(app, DOMAIN)
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth(), timeout=10) as http:
        first = await send(http, mail_body("Bob@Example.org"))
        parsed = await rendered(app, first)
        one_click = app.ctx.config.base_url.startswith("https://")  # RFC 8058 wants HTTPS
        assert (parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click") is one_click
        url = unsubscribe_url(parsed)

        async with httpx.AsyncClient(base_url=app.base_url, timeout=10) as public:
            page = await public.get(path_of(url))
            assert page.status_code == 200 and "<button" in page.text
            assert (
                await app.ctx.store.suppressions.get(
                    app.init.tenant_id, "unsubscribes", "bob@example.org"
                )
                is None
            )  # showing the page changes nothing

            r = await public.post(path_of(url), data={"List-Unsubscribe": "One-Click"})
            assert r.status_code == 200, r.text
            # RFC 8058 allows multipart/form-data too; a repeat changes nothing
            again = await public.post(path_of(url), files={"List-Unsubscribe": (None, "One-Click")})
            assert again.status_code == 200
            refused = await public.post(path_of(url), data={"something": "else"})
            assert refused.status_code == 400

        entry = await app.ctx.store.suppressions.get(
            app.init.tenant_id, "unsubscribes", "bob@example.org"
        )
        assert entry is not None and entry.message_id == first
        [event] = await events_of(app, first, "unsubscribe")  # once, not per POST
        assert event.recipient == "Bob@example.org"  # as validation normalised it

        listed = await http.get("/v3/suppression/unsubscribes")
        assert [e["email"] for e in listed.json()] == ["bob@example.org"]

        second = await send(http, mail_body("bob@example.org"))
        detail = (await http.get(f"/v3/messages/{second}")).json()
    assert detail["status"] == "FAILED"
    [dropped] = await events_of(app, second, "dropped")
    assert dropped.data["reason"] == "suppressed_unsubscribe"


async def test_unsubscribe_with_a_forged_token_changes_nothing(
    appliance: RunningAppliance,
) -> None:
    await verified_domain(appliance, DOMAIN)
    async with httpx.AsyncClient(
        base_url=appliance.base_url, headers=appliance.auth(), timeout=10
    ) as http:
        message_id = await send(http, mail_body("carol@example.org"))
    async with httpx.AsyncClient(base_url=appliance.base_url, timeout=10) as public:
        for token in (f"{message_id}.AAAAAAAAAAAAAAAAAAAAAA", "x", f"{message_id}"):
            r = await public.post(f"/t/u/{token}", data={"List-Unsubscribe": "One-Click"})
            assert r.status_code == 404
            assert (await public.get(f"/t/u/{token}")).status_code == 404
    assert (
        await appliance.ctx.store.suppressions.get(
            appliance.init.tenant_id, "unsubscribes", "carol@example.org"
        )
        is None
    )
