"""domain.submitted_mail: an RFC 5322 message and its envelope → SendGrid's mail/send body."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.domain.send_errors import SendValidationError
from appliance.domain.send_validation import parse_send_request
from appliance.domain.submitted_mail import SubmittedMailError, submission_body

NOW = datetime(2025, 1, 1, tzinfo=UTC)
FROM = "app@mail.example.test"


def mail(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", f"App <{FROM}>")
    msg["To"] = headers.pop("To", "alice@example.org")
    msg["Subject"] = headers.pop("Subject", "Hello")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("body text")
    return msg


def body_of(msg: EmailMessage | bytes, *recipients: str, mail_from: str = FROM) -> dict[str, Any]:
    data = msg if isinstance(msg, bytes) else msg.as_bytes(policy=policy.SMTP)
    body = submission_body(
        data, mail_from=mail_from, recipients=recipients or ["alice@example.org"]
    )
    parse_send_request(body, now=NOW)  # every body made must pass SendGrid's rules
    return body


def test_header_to_and_cc_that_are_envelope_recipients_and_the_rest_bcc() -> None:
    msg = mail(To="Alice <alice@example.org>, list@example.org", Cc="Carol <CAROL@example.org>")
    body = body_of(msg, "alice@example.org", "carol@example.org", "dave@example.org")
    assert body["personalizations"] == [
        {
            "to": [{"email": "alice@example.org", "name": "Alice"}],
            "cc": [{"email": "CAROL@example.org", "name": "Carol"}],
            "bcc": [{"email": "dave@example.org"}],
        }
    ]
    assert body["from"] == {"email": FROM, "name": "App"}


def test_first_envelope_recipient_becomes_to_when_no_header_address_matches() -> None:
    body = body_of(mail(To="undisclosed-recipients:;"), "b@example.org", "c@example.org")
    assert body["personalizations"] == [
        {"to": [{"email": "b@example.org"}], "bcc": [{"email": "c@example.org"}]}
    ]
    cc_only = body_of(mail(To="x@example.org", Cc="c@example.org"), "c@example.org")
    assert cc_only["personalizations"] == [{"to": [{"email": "c@example.org"}]}]


def test_duplicate_envelope_recipients_are_sent_once() -> None:
    body = body_of(mail(), "alice@example.org", "ALICE@example.org")
    assert body["personalizations"] == [{"to": [{"email": "alice@example.org"}]}]


def test_no_from_header_uses_the_envelope_sender() -> None:
    msg = mail()
    del msg["From"]
    assert body_of(msg)["from"] == {"email": FROM}


def test_subject_reply_to_and_encoded_words_are_decoded() -> None:
    msg = mail(Subject="Grüße ✓", Reply_To="Støtte <help@mail.example.test>")
    body = body_of(msg)
    assert body["subject"] == "Grüße ✓"
    assert body["reply_to"] == {"email": "help@mail.example.test", "name": "Støtte"}
    two = body_of(mail(Reply_To="a@example.org, b@example.org"))
    assert two["reply_to_list"] == [{"email": "a@example.org"}, {"email": "b@example.org"}]


def test_structural_headers_are_dropped_and_the_rest_kept() -> None:
    msg = mail(
        Received="from a by b",
        DKIM_Signature="v=1; a=rsa-sha256",
        Message_ID="<abc@example.org>",
        Date="Mon, 1 Jan 2024 00:00:00 +0000",
        Resent_From="x@example.org",
        X_Postyard_Message_Id="msg_forged",
        List_Unsubscribe="<mailto:leave@mail.example.test>",
        X_Campaign="spring",
        In_Reply_To="<parent@example.org>",
    )
    assert body_of(msg)["headers"] == {
        "List-Unsubscribe": "<mailto:leave@mail.example.test>",
        "X-Campaign": "spring",
        "In-Reply-To": "<parent@example.org>",
    }


def test_text_html_attachment_and_inline_image() -> None:
    msg = mail()
    msg.add_alternative("<p>hi <img src='cid:logo'></p>", subtype="html")
    msg.get_payload()[1].add_related(b"PNG", maintype="image", subtype="png", cid="<logo>")
    msg.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="Rëport.pdf")
    body = body_of(msg)
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["content"][0]["value"] == "body text\n"
    logo, report = body["attachments"]
    assert logo == {
        "content": base64.b64encode(b"PNG").decode(),
        "filename": "attachment-1.png",
        "type": "image/png",
        "disposition": "inline",
        "content_id": "logo",
    }
    assert report["filename"] == "Rëport.pdf"
    assert base64.b64decode(report["content"]) == b"%PDF"
    assert report["disposition"] == "attachment"


def test_attached_message_is_kept_whole_and_empty_attachments_left_out() -> None:
    inner = mail(Subject="inner")
    msg = mail()
    msg.add_attachment(inner)
    msg.add_attachment(b"", maintype="application", subtype="octet-stream", filename="empty")
    (attached,) = body_of(msg)["attachments"]
    assert attached["type"] == "message/rfc822"
    assert b"Subject: inner" in base64.b64decode(attached["content"])


def test_attachments_only_get_a_placeholder_body() -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = FROM, "alice@example.org", "files"
    msg.set_content(b"data", maintype="application", subtype="zip", filename="a.zip")
    body = body_of(msg)
    assert body["content"] == [{"type": "text/plain", "value": " "}]
    assert body["attachments"][0]["filename"] == "a.zip"


def test_latin1_body_is_decoded() -> None:
    msg = mail()
    msg.set_content("café", charset="iso-8859-1", cte="quoted-printable")
    assert body_of(msg)["content"][0]["value"].startswith("café")


def test_x_smtpapi_categories_unique_args_and_scheduling() -> None:
    api = {
        "category": "welcome",
        "unique_args": {"user": 7, "vip": True, "ref": "x"},
        "send_at": int(NOW.timestamp()) + 60,
        "asm_group_id": 3,
        "ip_pool": "transactional",
        "filters": {"clicktrack": {"settings": {"enable": 1}}},
        "to": ["ignored@example.org"],
    }
    body = body_of(mail(X_SMTPAPI=json.dumps(api)))
    assert body["categories"] == ["welcome"]
    assert body["custom_args"] == {"user": "7", "vip": "true", "ref": "x"}
    assert body["send_at"] == api["send_at"]
    assert body["asm"] == {"group_id": 3}
    assert body["ip_pool_name"] == "transactional"
    assert "X-SMTPAPI" not in body.get("headers", {})
    assert body_of(mail(X_SMTPAPI='{"category": ["a", "b"]}'))["categories"] == ["a", "b"]


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"category": 5}', "category must be a string or a list of strings"),
        ('{"unique_args": {"a": [1]}}', "unique_args 'a' must be a string or a number"),
        ('{"unique_args": "x"}', "unique_args must be a JSON object"),
        ('{"send_at": "tomorrow"}', "send_at must be a JSON int"),
    ],
)
def test_bad_x_smtpapi_says_what_is_wrong(header: str, says: str) -> None:
    with pytest.raises(SubmittedMailError, match=says):
        body_of(mail(X_SMTPAPI=header))


def test_missing_subject_from_or_recipient_say_what_to_add() -> None:
    msg = mail()
    del msg["Subject"]
    with pytest.raises(SubmittedMailError, match="no Subject"):
        body_of(msg)
    msg = mail()
    del msg["From"]
    with pytest.raises(SubmittedMailError, match="no From header"):
        body_of(msg, mail_from="")
    with pytest.raises(SubmittedMailError, match="holds no valid address"):
        body_of(mail(From="not an address"))
    with pytest.raises(SubmittedMailError, match="recipient 'bad' is not a valid email address"):
        body_of(mail(), "bad")
    with pytest.raises(SubmittedMailError, match="no recipients"):
        submission_body(mail().as_bytes(), mail_from=FROM, recipients=[])


def test_raw_8bit_headers_and_control_characters_are_cleaned() -> None:
    data = (
        b"From: App <app@mail.example.test>\r\nTo: alice@example.org\r\n"
        b"Subject: caf\xc3\xa9 =?utf-8?q?a=0Ab?= \xff\r\nX-Note: ok\r\n\r\nhello\r\n"
    )
    body = body_of(data)
    assert body["subject"] == "café a b \ufffd"
    assert body["headers"] == {"X-Note": "ok"}
    assert json.loads(json.dumps(body)) == body


# --- properties ---------------------------------------------------------------------------

ENVELOPE = ["alice@example.org", "bob@example.org", "Carol@example.org", "bad address"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        st.lists(
            st.sampled_from(
                [
                    b"From: a@mail.example.test\r\n",
                    b"To: alice@example.org, =?utf-8?b?w6k=?= <bob@example.org>\r\n",
                    b'Cc: "x, y" <Carol@example.org>, (comment) <<>>\r\n',
                    b"Subject: =?bogus?q?x?= hi\r\n",
                    b"Reply-To: ;;;@@\r\n",
                    b'X-SMTPAPI: {"category": [1]}\r\n',
                    b"Content-Type: multipart/mixed; boundary=b\r\n",
                    b"Content-Type: text/plain; charset=unknown-8\r\n",
                    b"Content-Transfer-Encoding: base64\r\n",
                    b"Content-ID: <\x00>\r\n",
                    b"\r\n",
                    b"--b\r\n",
                    b"--b--\r\n",
                    b"Content-Disposition: inline; filename*=utf-8''%ff\r\n",
                    b"=?utf-8?q?=FF?=\r\n",
                    b"\xff\xfe body \x00\r\n",
                ]
            ),
            max_size=30,
        ).map(b"".join),
    ),
    recipients=st.lists(st.sampled_from(ENVELOPE), max_size=4),
)
def test_any_input_gives_a_valid_body_or_the_typed_error(
    data: bytes, recipients: list[str]
) -> None:
    try:
        body = submission_body(data, mail_from=FROM, recipients=recipients)
    except SubmittedMailError as exc:
        error = str(exc)
    else:
        error = ""
    if error:
        return  # the typed error, with what is wrong
    json.dumps(body)  # storable
    try:
        request = parse_send_request(body, now=NOW)
    except SendValidationError:
        return  # SendGrid's own rules (e.g. an unverifiable name); answered 550 5.6.0 too
    assert request.personalizations[0].to


_TEXT = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N", "P", "S"), whitelist_characters=" "),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip())


@settings(max_examples=150, deadline=None)
@given(subject=_TEXT, name=_TEXT, text=_TEXT, html=_TEXT)
def test_generated_messages_keep_subject_names_and_bodies(
    subject: str, name: str, text: str, html: str
) -> None:
    msg = EmailMessage()
    msg["From"] = FROM
    msg["To"] = Address(display_name=name, addr_spec="alice@example.org")
    msg["Subject"] = subject
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    body = body_of(msg)
    assert " ".join(body["subject"].split()) == " ".join(subject.split())
    assert " ".join(body["personalizations"][0]["to"][0]["name"].split()) == " ".join(name.split())
    assert body["content"][0]["value"].strip() == text.strip()
    assert body["content"][1]["value"].strip() == html.strip()
