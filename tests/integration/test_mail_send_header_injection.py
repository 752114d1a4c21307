"""Header injection and malformed bytes through ``POST /v3/mail/send``.

A CR, LF or NUL in any value that becomes a header (names, subjects, custom
header names and values) is refused with SendGrid's error shape naming the
field, through the official ``sendgrid`` client. Values that never become
headers (categories, custom_args) are accepted, and the message composed for
them, as ``postyard render`` composes it, carries exactly its own headers.
Bodies that are not UTF-8 JSON get the single ``Bad Request``.
"""

from __future__ import annotations

import email
import email.policy
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from python_http_client.exceptions import BadRequestsError
from sendgrid import SendGridAPIClient

from appliance.services.composer import ComposeError, Composer
from appliance.store.messages import MessageFilter
from tests.support.appliance import RunningAppliance
from tests.support.sending import verified_domain

DOMAIN = "inject.example.test"
FROM = f"news@{DOMAIN}"
INJECTION = "x\r\nBcc: victim@example.net"
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#"


@pytest.fixture
async def sender(appliance: RunningAppliance) -> RunningAppliance:
    await verified_domain(appliance, DOMAIN)
    return appliance


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "personalizations": [{"to": [{"email": "ana@example.org", "name": "Ana"}]}],
        "from": {"email": FROM, "name": "News"},
        "subject": "Hello",
        "content": [{"type": "text/plain", "value": "Hi"}],
    }
    base.update(changes)
    return base


def personalization(**changes: Any) -> list[dict[str, Any]]:
    return [{"to": [{"email": "ana@example.org", "name": "Ana"}], **changes}]


async def refused(app: RunningAppliance, request_body: dict[str, Any]) -> list[dict[str, Any]]:
    def post() -> BadRequestsError:
        client = SendGridAPIClient(api_key=app.api_key, host=app.base_url)
        with pytest.raises(BadRequestsError) as caught:
            client.client.mail.send.post(request_body=request_body)
        return caught.value

    error = await trio.to_thread.run_sync(post)
    assert error.status_code == 400
    errors: list[dict[str, Any]] = error.to_dict["errors"]
    return errors


NAME = "The {} name cannot contain CRLF or NUL characters."
SUBJECT = "The subject of your email cannot contain CRLF or NUL characters."
HEADER_VALUE = "Header values cannot contain CRLF or NUL characters."


@pytest.mark.parametrize(
    ("changes", "field", "message", "anchor"),
    [
        ({"from": {"email": FROM, "name": INJECTION}}, "from.name", NAME.format("from"),
         "message.from"),
        ({"from": {"email": FROM, "name": "News\0"}}, "from.name", NAME.format("from"),
         "message.from"),
        ({"personalizations": [{"to": [{"email": "a@example.org", "name": INJECTION}]}]},
         "personalizations.0.to.0.name", NAME.format("to"), "message.personalizations.to"),
        ({"personalizations": personalization(cc=[{"email": "c@example.org", "name": "C\n"}])},
         "personalizations.0.cc.0.name", NAME.format("cc"), "message.personalizations.cc"),
        ({"personalizations": personalization(bcc=[{"email": "b@example.org", "name": "\rB"}])},
         "personalizations.0.bcc.0.name", NAME.format("bcc"), "message.personalizations.bcc"),
        ({"personalizations": personalization(from_={"email": FROM, "name": INJECTION})},
         "personalizations.0.from.name", NAME.format("from"), "message.from"),
        ({"reply_to": {"email": FROM, "name": INJECTION}}, "reply_to.name",
         NAME.format("reply_to"), "message.reply_to"),
        ({"reply_to_list": [{"email": FROM, "name": INJECTION}]}, "reply_to_list.0.name",
         NAME.format("reply_to_list"), "message.reply_to_list"),
        ({"subject": INJECTION}, "subject", SUBJECT, "message.subject"),
        ({"subject": "Hello\n"}, "subject", SUBJECT, "message.subject"),
        ({"subject": "Hel\0lo"}, "subject", SUBJECT, "message.subject"),
        ({"personalizations": personalization(subject=INJECTION)}, "personalizations.0.subject",
         SUBJECT, "message.personalizations.subject"),
        ({"headers": {"X-Campaign": INJECTION}}, "headers.X-Campaign", HEADER_VALUE,
         "message.headers"),
        ({"personalizations": personalization(headers={"X-Order": "1\r\nX-Evil: 1"})},
         "personalizations.0.headers.X-Order", HEADER_VALUE, "message.personalizations.headers"),
        ({"headers": {"X-Evil\r\nBcc": "victim@example.net"}}, "headers",
         "Header keys cannot contain non-ASCII characters and empty spaces.", "message.headers"),
        ({"personalizations": personalization(headers={"Bcc:\r\nX": "1"})},
         "personalizations.0.headers",
         "Header keys cannot contain non-ASCII characters or empty spaces.",
         "message.personalizations.headers"),
        ({"from": {"email": "news\r\n@inject.example.test"}}, "from.email",
         "The from email does not contain a valid address.", "message.from"),
        ({"personalizations": [{"to": [{"email": '"a\r\nBcc: v"@example.org'}]}]},
         "personalizations.0.to.0.email", "Does not contain a valid address.",
         "message.personalizations.to"),
    ],
)  # fmt: skip
async def test_line_breaks_in_header_values_are_refused_naming_the_field(
    sender: RunningAppliance, changes: dict[str, Any], field: str, message: str, anchor: str
) -> None:
    if "personalizations" in changes and "from_" in changes["personalizations"][0]:
        changes["personalizations"][0]["from"] = changes["personalizations"][0].pop("from_")
    errors = await refused(sender, body(**changes))
    assert {"message": message, "field": field, "help": HELP + anchor} in errors, errors
    assert (
        await sender.ctx.store.messages.search(sender.init.tenant_id, MessageFilter(), limit=5)
    ) == []


async def _queued_ids(app: RunningAppliance, request_body: dict[str, Any]) -> list[str]:
    async with httpx.AsyncClient(base_url=app.base_url, headers=app.auth()) as http:
        r = await http.post("/v3/mail/send", json=request_body)
        assert r.status_code == 202, r.text
        listed = await http.get("/v3/messages", params={"x_message_id": r.headers["X-Message-Id"]})
    return [m["msg_id"] for m in listed.json()["messages"]]


async def _render(app: RunningAppliance, message_id: str) -> bytes:
    message = await app.ctx.store.messages.get(None, message_id)
    assert message is not None
    return (await Composer(app.ctx).compose(message, now=time.time())).data


async def test_categories_and_custom_args_with_line_breaks_add_no_header(
    sender: RunningAppliance,
) -> None:
    (message_id,) = await _queued_ids(
        sender,
        body(
            categories=[INJECTION, "ok\nX-Evil: 1"],
            custom_args={INJECTION: INJECTION, "k\r\nX-Evil": "v\0"},
            personalizations=personalization(custom_args={"p": "1\r\nX-Evil: 2"}),
            headers={"X-Note": "plain"},
        ),
    )
    raw = await _render(sender, message_id)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    counts = Counter(name.lower() for name in parsed)
    assert "bcc" not in counts and "x-evil" not in counts
    assert all(n == 1 for name, n in counts.items() if name != "received"), counts
    assert parsed["X-Note"] == "plain"
    assert b"victim@example.net" not in raw and b"X-Evil" not in raw


async def test_a_substitution_with_a_line_break_fails_the_message_instead_of_injecting(
    sender: RunningAppliance,
) -> None:
    (message_id,) = await _queued_ids(
        sender,
        body(
            subject="Hello -name-",
            personalizations=personalization(substitutions={"-name-": INJECTION}),
        ),
    )
    message = await sender.ctx.store.messages.get(None, message_id)
    assert message is not None
    with pytest.raises(ComposeError, match="'Subject' contains a line break"):
        await Composer(sender.ctx).compose(message, now=time.time())


@pytest.mark.parametrize(
    "raw",
    [
        b'{"subject": "\xff\xfe", "from": {"email": "news@inject.example.test"}}',
        b'{"subject": "caf\xe9"}',  # Latin-1, not UTF-8
        b'{"subject": "\xed\xa0\x80"}',  # an encoded surrogate: not UTF-8 either
        b"\xef\xbb\xbf\xff",
    ],
)
async def test_invalid_utf8_is_a_bad_request(sender: RunningAppliance, raw: bytes) -> None:
    async with httpx.AsyncClient(base_url=sender.base_url, headers=sender.auth()) as http:
        r = await http.post(
            "/v3/mail/send", content=raw, headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 400, r.text
    assert r.json() == {"errors": [{"message": "Bad Request", "field": None, "help": None}]}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"subject": "Hi \\ud800"}, "subject"),
        ({"from": {"email": FROM, "name": "\\udfff"}}, "from.name"),
        ({"categories": ["\\ud83d"]}, "categories.0"),
        ({"custom_args": {"k": "\\udc00"}}, "custom_args.k"),
        ({"content": [{"type": "text/plain", "value": "\\ud800"}]}, "content.0.value"),
    ],
)
async def test_lone_surrogate_escapes_are_refused_naming_the_field(
    sender: RunningAppliance, changes: dict[str, Any], field: str
) -> None:
    """``"\\ud800"`` is valid JSON but no Unicode text: it cannot be stored or encoded."""
    raw = json.dumps(body(**changes)).replace("\\\\u", "\\u").encode()
    async with httpx.AsyncClient(base_url=sender.base_url, headers=sender.auth()) as http:
        r = await http.post("/v3/mail/send", content=raw)
    assert r.status_code == 400, r.text
    (error,) = r.json()["errors"]
    assert error["field"] == field, error


async def test_chunked_body_over_30_mb_is_413(sender: RunningAppliance) -> None:
    """Without Content-Length the limit holds as well (the 413 path the other tests miss)."""
    chunk = b" " * (1024 * 1024)

    async def stream() -> AsyncIterator[bytes]:
        yield b'{"subject": "big",'
        for _ in range(31):
            yield chunk
        yield b'"x": 1}'

    async with httpx.AsyncClient(
        base_url=sender.base_url, headers=sender.auth(), timeout=60
    ) as http:
        r = await http.post("/v3/mail/send", content=stream())
    assert r.status_code == 413
    assert r.json()["errors"][0]["message"] == "content too large"
