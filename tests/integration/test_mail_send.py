"""``POST /v3/mail/send`` with the real sendgrid client and httpx: acceptance, errors, lists."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import trio
from python_http_client.exceptions import BadRequestsError, ForbiddenError, HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Attachment,
    Category,
    ContentId,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    Mail,
    MailSettings,
    Personalization,
    SandBoxMode,
    Substitution,
    To,
)

from tests.support.appliance import RunningAppliance
from tests.support.sending import verified_domain

FROM = "sender@mail.example.test"


@pytest.fixture
async def sender(appliance: RunningAppliance) -> RunningAppliance:
    await verified_domain(appliance, "mail.example.test")
    return appliance


def _client(app: RunningAppliance) -> SendGridAPIClient:
    return SendGridAPIClient(api_key=app.api_key, host=app.base_url)


async def _rejected(app: RunningAppliance, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST the body with the sendgrid client; return the errors of its 400."""

    def post() -> None:
        _client(app).client.mail.send.post(request_body=body)

    with pytest.raises(BadRequestsError) as caught:
        await trio.to_thread.run_sync(post)
    errors: list[dict[str, Any]] = caught.value.to_dict["errors"]
    return errors


async def _send(app: RunningAppliance, mail: Mail) -> Any:
    return await trio.to_thread.run_sync(_client(app).send, mail)


async def test_sendgrid_client_send_is_accepted_with_a_message_id(
    sender: RunningAppliance,
) -> None:
    mail = Mail(
        from_email=FROM,
        to_emails="alice@example.org",
        subject="Hello",
        plain_text_content="Hi Alice",
        html_content="<p>Hi Alice</p>",
    )
    mail.category = [Category("welcome")]
    mail.custom_arg = [CustomArg("campaign", "spring")]
    response = await _send(sender, mail)
    assert response.status_code == 202
    assert response.body in (b"", "")
    x_message_id = response.headers["X-Message-Id"]

    async with httpx.AsyncClient(base_url=sender.base_url, headers=sender.auth()) as http:
        listed = (await http.get("/v3/messages", params={"x_message_id": x_message_id})).json()
        assert len(listed["messages"]) == 1
        message = listed["messages"][0]
        assert message["status"] == "QUEUED"
        assert message["to_email"] == "alice@example.org"
        assert message["category"] == "welcome"
        detail = (await http.get(f"/v3/messages/{message['msg_id']}")).json()
    assert [e["event_type"] for e in detail["events"]] == ["processed"]
    event = detail["events"][0]
    assert event["x_message_id"] == x_message_id
    assert event["custom_args"] == {"campaign": "spring"}
    assert event["category"] == ["welcome"]


async def test_one_message_per_personalization_and_recipient(sender: RunningAppliance) -> None:
    mail = Mail(from_email=FROM, subject="Hi -name-", plain_text_content="Hello -name-")
    for i in range(3):
        p = Personalization()
        p.add_to(To(f"user{i}@example.org"))
        p.add_cc(To(f"cc{i}@example.org"))
        p.add_substitution(Substitution("-name-", f"User {i}"))
        mail.add_personalization(p)
    response = await _send(sender, mail)
    assert response.status_code == 202
    counts = await sender.ctx.store.messages.count_by_status(sender.init.tenant_id)
    assert counts == {"QUEUED": 6}


async def test_thousand_recipients_in_one_request(sender: RunningAppliance) -> None:
    body = {
        "personalizations": [{"to": [{"email": f"r{i}@example.org"}]} for i in range(1000)],
        "from": {"email": FROM},
        "subject": "Big",
        "content": [{"type": "text/plain", "value": "x"}],
    }
    async with httpx.AsyncClient(
        base_url=sender.base_url, headers=sender.auth(), timeout=30
    ) as http:
        r = await http.post("/v3/mail/send", json=body)
    assert r.status_code == 202
    counts = await sender.ctx.store.messages.count_by_status(sender.init.tenant_id)
    assert counts == {"QUEUED": 1000}


async def test_sandbox_mode_answers_200_and_stores_nothing(sender: RunningAppliance) -> None:
    mail = Mail(from_email=FROM, to_emails="a@example.org", subject="s", plain_text_content="t")
    settings = MailSettings()
    settings.sandbox_mode = SandBoxMode(True)
    mail.mail_settings = settings
    response = await _send(sender, mail)
    assert response.status_code == 200
    assert await sender.ctx.store.messages.count_by_status() == {}


async def test_unverified_sender_domain_is_403(sender: RunningAppliance) -> None:
    mail = Mail(
        from_email="x@unverified.example",
        to_emails="a@example.org",
        subject="s",
        plain_text_content="t",
    )
    with pytest.raises(ForbiddenError) as caught:
        await _send(sender, mail)
    error = caught.value.to_dict["errors"][0]
    assert error["message"] == "Sender domain not verified"
    assert error["field"] == "from.email"


async def test_inactive_domain_is_403(sender: RunningAppliance) -> None:
    domain = await sender.ctx.store.domains.get_by_name("mail.example.test")
    assert domain is not None
    await sender.ctx.store.domains.set_active(sender.init.tenant_id, domain.id, False)
    mail = Mail(from_email=FROM, to_emails="a@example.org", subject="s", plain_text_content="t")
    with pytest.raises(ForbiddenError):
        await _send(sender, mail)


@pytest.mark.parametrize(
    ("body", "field", "message_part"),
    [
        (
            {
                "from": {"email": FROM},
                "subject": "s",
                "content": [{"type": "text/plain", "value": "x"}],
            },
            "personalizations",
            "personalizations",
        ),
        (
            {
                "personalizations": [{"to": [{"email": "a@example.org"}]}],
                "subject": "s",
                "content": [{"type": "text/plain", "value": "x"}],
            },
            "from.email",
            "from",
        ),
        (
            {
                "personalizations": [{"to": [{"email": "not-an-address"}]}],
                "from": {"email": FROM},
                "subject": "s",
                "content": [{"type": "text/plain", "value": "x"}],
            },
            "personalizations.0.to.0.email",
            "valid",
        ),
        (
            {
                "personalizations": [{"to": [{"email": "a@example.org"}]}],
                "from": {"email": FROM},
                "content": [{"type": "text/plain", "value": "x"}],
            },
            "subject",
            "subject",
        ),
        (
            {
                "personalizations": [{"to": [{"email": "a@example.org"}]}],
                "from": {"email": FROM},
                "subject": "s",
            },
            "content",
            "content",
        ),
        (
            {
                "personalizations": [{"to": [{"email": "a@example.org"}]}],
                "from": {"email": FROM},
                "subject": "s",
                "content": [{"type": "text/plain", "value": "x"}],
                "categories": [f"c{i}" for i in range(11)],
            },
            "categories",
            "categor",
        ),
        (
            {
                "personalizations": [{"to": [{"email": "a@example.org"}]}],
                "from": {"email": FROM},
                "subject": "s",
                "content": [{"type": "text/plain", "value": "x"}],
                "headers": {"From": "evil@example.org"},
            },
            "headers",
            "header",
        ),
        (
            {
                "personalizations": [
                    {"to": [{"email": "a@example.org"}, {"email": "A@example.org"}]}
                ],
                "from": {"email": FROM},
                "subject": "s",
                "content": [{"type": "text/plain", "value": "x"}],
            },
            "personalizations.0",
            "unique",
        ),
    ],
    ids=[
        "no-personalizations",
        "no-from",
        "bad-to",
        "no-subject",
        "no-content",
        "eleven-categories",
        "forbidden-header",
        "duplicate-recipient",
    ],
)
async def test_validation_errors_reach_the_sendgrid_client(
    sender: RunningAppliance, body: dict[str, Any], field: str, message_part: str
) -> None:
    errors = await _rejected(sender, body)
    match = [e for e in errors if e["field"] == field]
    assert match, f"no error for field {field}: {errors}"
    assert message_part.lower() in match[0]["message"].lower()
    assert await sender.ctx.store.messages.count_by_status() == {}


async def test_too_many_recipients_is_400(sender: RunningAppliance) -> None:
    body = {
        "personalizations": [{"to": [{"email": f"r{i}@example.org"}]} for i in range(1001)],
        "from": {"email": FROM},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
    }
    async with httpx.AsyncClient(
        base_url=sender.base_url, headers=sender.auth(), timeout=30
    ) as http:
        r = await http.post("/v3/mail/send", json=body)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "personalizations"


async def test_body_over_30_mb_is_413_in_json(sender: RunningAppliance) -> None:
    big = base64.b64encode(b"x" * (23 * 1024 * 1024)).decode()
    body = {
        "personalizations": [{"to": [{"email": "a@example.org"}]}],
        "from": {"email": FROM},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
        "attachments": [{"content": big, "filename": "big.bin"}],
    }
    async with httpx.AsyncClient(
        base_url=sender.base_url, headers=sender.auth(), timeout=60
    ) as http:
        r = await http.post("/v3/mail/send", content=json.dumps(body).encode())
    assert r.status_code == 413
    assert r.json()["errors"][0]["message"] == "content too large"


async def test_attachments_and_inline_images_are_accepted(sender: RunningAppliance) -> None:
    mail = Mail(
        from_email=FROM, to_emails="a@example.org", subject="s", html_content="<img src='cid:logo'>"
    )
    mail.attachment = Attachment(
        FileContent(base64.b64encode(b"PNG").decode()),
        FileName("logo.png"),
        FileType("image/png"),
        Disposition("inline"),
        ContentId("logo"),
    )
    response = await _send(sender, mail)
    assert response.status_code == 202


async def test_suppressed_recipient_is_dropped_unless_bypassed(
    sender: RunningAppliance,
) -> None:
    store = sender.ctx.store
    tenant = sender.init.tenant_id
    await store.suppressions.add(tenant, "bounces", "gone@example.org", reason="550 5.1.1")
    await store.suppressions.add(tenant, "unsubscribes", "left@example.org")
    body: dict[str, Any] = {
        "personalizations": [
            {"to": [{"email": "Gone@example.org"}]},
            {"to": [{"email": "left@example.org"}]},
            {"to": [{"email": "ok@example.org"}]},
        ],
        "from": {"email": FROM},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
    }
    async with httpx.AsyncClient(base_url=sender.base_url, headers=sender.auth()) as http:
        r = await http.post("/v3/mail/send", json=body)
        assert r.status_code == 202
        listed = (
            await http.get("/v3/messages", params={"x_message_id": r.headers["X-Message-Id"]})
        ).json()["messages"]
        by_rcpt = {m["to_email"]: m for m in listed}
        assert by_rcpt["Gone@example.org"]["status"] == "FAILED"
        assert by_rcpt["left@example.org"]["status"] == "FAILED"
        assert by_rcpt["ok@example.org"]["status"] == "QUEUED"
        gone = (await http.get(f"/v3/messages/{by_rcpt['Gone@example.org']['msg_id']}")).json()
        assert gone["events"][0]["event_type"] == "dropped"
        assert gone["events"][0]["reason"] == "suppressed_bounce"
        assert "Bounced Address" in gone["error_message"]

        body["mail_settings"] = {"bypass_bounce_management": {"enable": True}}
        r2 = await http.post("/v3/mail/send", json=body)
        listed2 = (
            await http.get("/v3/messages", params={"x_message_id": r2.headers["X-Message-Id"]})
        ).json()["messages"]
        statuses = {m["to_email"]: m["status"] for m in listed2}
        assert statuses == {
            "Gone@example.org": "QUEUED",
            "left@example.org": "FAILED",
            "ok@example.org": "QUEUED",
        }


async def test_idempotency_key_returns_the_first_answer(sender: RunningAppliance) -> None:
    body = {
        "personalizations": [{"to": [{"email": "a@example.org"}]}],
        "from": {"email": FROM},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
    }
    headers = {**sender.auth(), "Idempotency-Key": "order-42"}
    async with httpx.AsyncClient(base_url=sender.base_url, headers=headers) as http:
        first = await http.post("/v3/mail/send", json=body)
        again = await http.post("/v3/mail/send", json=body)
        other = await http.post("/v3/mail/send", json={**body, "subject": "other"})
    assert first.status_code == again.status_code == 202
    assert first.headers["X-Message-Id"] == again.headers["X-Message-Id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422
    assert await sender.ctx.store.messages.count_by_status() == {"QUEUED": 1}


async def test_batch_ids(sender: RunningAppliance) -> None:
    def scenario() -> tuple[str, int]:
        sg = _client(sender)
        batch = json.loads(sg.client.mail.batch.post().body)["batch_id"]
        got = sg.client.mail.batch._(batch).get()
        return batch, got.status_code

    batch_id, status = await trio.to_thread.run_sync(scenario)
    assert status == 200
    body = {
        "personalizations": [{"to": [{"email": "a@example.org"}]}],
        "from": {"email": FROM},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
        "batch_id": batch_id,
    }
    async with httpx.AsyncClient(base_url=sender.base_url, headers=sender.auth()) as http:
        assert (await http.post("/v3/mail/send", json=body)).status_code == 202
        bad = await http.post("/v3/mail/send", json={**body, "batch_id": "nope"})
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["field"] == "batch_id"


async def test_mail_send_needs_the_mail_send_scope(sender: RunningAppliance) -> None:
    async with httpx.AsyncClient(base_url=sender.base_url, headers=sender.auth()) as http:
        narrow = (
            await http.post("/v3/api_keys", json={"name": "ro", "scopes": ["messages.read"]})
        ).json()
    mail = Mail(from_email=FROM, to_emails="a@example.org", subject="s", plain_text_content="t")

    def send() -> None:
        SendGridAPIClient(api_key=narrow["api_key"], host=sender.base_url).send(mail)

    with pytest.raises(HTTPError) as caught:
        await trio.to_thread.run_sync(send)
    assert caught.value.status_code == 403
    assert caught.value.to_dict["errors"][0]["message"] == "Missing required scope: mail.send"


def _base(**extra: Any) -> dict[str, Any]:
    return {
        "personalizations": [{"to": [{"email": "a@example.org"}]}],
        "from": {"email": FROM},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
        **extra,
    }


@pytest.mark.parametrize(
    ("body", "field", "message_part"),
    [
        (
            {
                **_base(),
                "personalizations": [{"to": [{"email": f"p{i}@example.org"}]} for i in range(1001)],
            },
            "personalizations",
            "1000 personalizations",
        ),
        (_base(custom_args={f"k{i}": "v" * 100 for i in range(120)}), "custom_args", ""),
        (_base(send_at=2_000_000_000), "send_at", "72 hours"),
        (
            _base(reply_to={"email": "a@example.org"}, reply_to_list=[{"email": "b@example.org"}]),
            "reply_to",
            "",
        ),
        (
            _base(attachments=[{"content": "not base64!", "filename": "a.txt"}]),
            "attachments.0.content",
            "",
        ),
    ],
    ids=[
        "1001-personalizations",
        "custom-args-over-10000-bytes",
        "send-at-beyond-72h",
        "reply-to-and-list",
        "attachment-not-base64",
    ],
)
async def test_limits_reach_the_sendgrid_client(
    sender: RunningAppliance, body: dict[str, Any], field: str, message_part: str
) -> None:
    errors = await _rejected(sender, body)
    match = [e for e in errors if (e["field"] or "").startswith(field)]
    assert match, f"no error for field {field}: {errors}"
    assert message_part.lower() in match[0]["message"].lower()


async def test_413_reaches_the_sendgrid_client(sender: RunningAppliance) -> None:
    from python_http_client.exceptions import PayloadTooLargeError

    big = base64.b64encode(b"x" * (23 * 1024 * 1024)).decode()
    body = _base(attachments=[{"content": big, "filename": "big.bin"}])

    def post() -> None:
        _client(sender).client.mail.send.post(request_body=body)

    with pytest.raises(PayloadTooLargeError) as caught:
        await trio.to_thread.run_sync(post)
    assert caught.value.to_dict["errors"][0]["message"] == "content too large"
