"""Building outgoing messages: structure, headers, encodings, refusals.

Every message is parsed back with the stdlib parser (``policy.default``), the
way a receiving MUA would read it.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, MIMEPart

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.protocols.mime import (
    FORBIDDEN_HEADERS,
    Attachment,
    Disposition,
    Mailbox,
    MessageSpec,
    build_message,
)

BASE = MessageSpec(
    from_=Mailbox("orders@example.com", "Example Orders"),
    to=(Mailbox("alex@example.com", "Alex"),),
    subject="Your order",
    postyard_message_id="msg_01HXYZ",
    message_id_domain="mail.example.com",
    date=datetime(2024, 4, 23, 12, 0, tzinfo=UTC),
    text="Hello Alex",
)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def build(**changes: object) -> bytes:
    return build_message(dataclasses.replace(BASE, **changes))  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def content(part: MIMEPart) -> str:
    """A text part's decoded content with the wire's CRLF read as newlines."""
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def structure(part: object) -> object:
    assert isinstance(part, EmailMessage)
    if part.is_multipart():
        children = part.get_payload()
        assert isinstance(children, list)
        return (part.get_content_type(), [structure(c) for c in children])
    return part.get_content_type()


def assert_wire_format(raw: bytes) -> None:
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF"
    assert b"\r" not in raw.replace(b"\r\n", b""), "bare CR"
    assert raw.endswith(b"\r\n")
    longest = max(len(line) for line in raw.split(b"\r\n"))
    assert longest <= 998, longest


# ---------------------------------------------------------------- structure


def test_text_only_is_a_single_text_plain_part() -> None:
    raw = build()
    msg = parse(raw)
    assert structure(msg) == "text/plain"
    assert content(msg).rstrip("\n") == "Hello Alex"
    assert msg["Content-Transfer-Encoding"] == "7bit"
    assert_wire_format(raw)


def test_html_only_is_a_single_text_html_part() -> None:
    msg = parse(build(text=None, html="<p>Hi</p>"))
    assert structure(msg) == "text/html"


def test_text_and_html_are_alternatives_text_first() -> None:
    msg = parse(build(html="<p>Hello</p>"))
    assert structure(msg) == ("multipart/alternative", ["text/plain", "text/html"])
    body = msg.get_body(("html",))
    assert body is not None
    assert content(body).strip() == "<p>Hello</p>"


def test_amp_sits_between_text_and_html() -> None:
    msg = parse(build(html="<p>Hi</p>", amp_html="<html amp4email><body>Hi</body></html>"))
    assert structure(msg) == (
        "multipart/alternative",
        ["text/plain", "text/x-amp-html", "text/html"],
    )


def test_inline_images_with_content_id_are_related_to_the_html() -> None:
    logo = Attachment("logo.png", PNG, "image/png", Disposition.INLINE, "logo")
    raw = build(html='<img src="cid:logo">', attachments=(logo,))
    msg = parse(raw)
    assert structure(msg) == (
        "multipart/alternative",
        ["text/plain", ("multipart/related", ["text/html", "image/png"])],
    )
    image = next(p for p in msg.walk() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<logo>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content() == PNG
    assert_wire_format(raw)


def test_regular_attachments_make_mixed_the_outermost() -> None:
    pdf = Attachment("invoice.pdf", b"%PDF-1.4 " * 500, "application/pdf")
    logo = Attachment("logo.png", PNG, "image/png", Disposition.INLINE, "<logo@x>")
    raw = build(html='<img src="cid:logo@x">', attachments=(pdf, logo))
    msg = parse(raw)
    assert structure(msg) == (
        "multipart/mixed",
        [
            (
                "multipart/alternative",
                ["text/plain", ("multipart/related", ["text/html", "image/png"])],
            ),
            "application/pdf",
        ],
    )
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_content() == b"%PDF-1.4 " * 500
    assert attachment["Content-Transfer-Encoding"] == "base64"
    image = next(p for p in msg.walk() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<logo@x>"  # brackets given by the caller are not doubled
    assert_wire_format(raw)


def test_inline_attachment_without_html_goes_to_mixed() -> None:
    logo = Attachment("logo.png", PNG, "image/png", Disposition.INLINE, "logo")
    msg = parse(build(attachments=(logo,)))
    assert structure(msg) == ("multipart/mixed", ["text/plain", "image/png"])


def test_text_attachment_round_trips_bytes() -> None:
    doc = Attachment("notes.txt", "naïve\nline\n".encode(), "text/plain")
    msg = parse(build(attachments=(doc,)))
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_payload(decode=True) == "naïve\nline\n".encode()


def test_unreadable_attachment_type_falls_back_to_octet_stream() -> None:
    blob = Attachment("x.bin", b"\x00\x01", "not a type")
    msg = parse(build(attachments=(blob,)))
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_content_type() == "application/octet-stream"


def test_no_body_at_all_still_makes_a_valid_message() -> None:
    msg = parse(build(text=None))
    assert structure(msg) == "text/plain"


# ---------------------------------------------------------------- headers


def test_standard_headers() -> None:
    msg = parse(build(cc=(Mailbox("cc@example.com"),), reply_to=(Mailbox("r@example.com", "R"),)))
    assert msg["From"] == "Example Orders <orders@example.com>"
    assert msg["To"] == "Alex <alex@example.com>"
    assert msg["Cc"] == "cc@example.com"
    assert msg["Reply-To"] == "R <r@example.com>"
    assert msg["Subject"] == "Your order"
    assert msg["Message-ID"] == "<msg_01HXYZ@mail.example.com>"
    assert msg["X-Postyard-Message-Id"] == "msg_01HXYZ"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime == datetime(2024, 4, 23, 12, 0, tzinfo=UTC)
    assert "Bcc" not in msg


def test_date_keeps_its_offset() -> None:
    cet = timezone(timedelta(hours=2))
    msg = parse(build(date=datetime(2024, 4, 23, 14, 0, tzinfo=cet)))
    assert msg["Date"].endswith("+0200")


def test_naive_date_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build(date=datetime(2024, 4, 23, 12, 0))


def test_many_recipients_fold_and_round_trip() -> None:
    to = tuple(Mailbox(f"user{i}@example.com", f"User, No. {i}") for i in range(40))
    raw = build(to=to)
    msg = parse(raw)
    addresses = msg["To"].addresses
    assert [(a.display_name, a.addr_spec) for a in addresses] == [(m.name, m.email) for m in to]
    assert_wire_format(raw)


@pytest.mark.parametrize(
    "subject",
    [
        "Héllo wörld",
        "Заказ № 42 подтверждён — спасибо за покупку в нашем магазине, ждём вас снова",
        "注文確認：ご注文ありがとうございます。" * 4,
        "emoji 🎉🎉🎉 " * 12,
        "  spaced   out  ",
        "looks like =?utf-8?q?an_encoded_word?= but is not",
    ],
)
def test_non_ascii_subjects_round_trip_via_rfc2047(subject: str) -> None:
    raw = build(subject=subject)
    msg = parse(raw)
    assert msg["Subject"] == subject.strip()
    header = raw.split(b"\r\n\r\n", 1)[0]
    assert header.isascii()
    for line in header.split(b"\r\n"):
        assert len(line) <= 78 or b"=?" not in line, line
    assert_wire_format(raw)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0")))
def test_any_subject_round_trips(subject: str) -> None:
    raw = build(subject=subject)
    assert parse(raw)["Subject"] == subject.strip(" \t")
    assert_wire_format(raw)


def test_long_ascii_subject_folds_at_white_space() -> None:
    subject = " ".join(["word"] * 60)
    raw = build(subject=subject)
    assert parse(raw)["Subject"] == subject
    subject_lines = re.search(rb"Subject: .*?\r\n(?! )", raw, re.S)
    assert subject_lines is not None
    assert all(len(line) <= 78 for line in subject_lines.group(0).split(b"\r\n"))


def test_non_ascii_display_names_round_trip() -> None:
    raw = build(
        from_=Mailbox("shop@example.com", "Zoë's Bücher, GmbH"),
        to=(Mailbox("k@example.com", "山田 太郎"), Mailbox("q@example.com", 'Bob "B" (x)')),
    )
    assert raw.split(b"\r\n\r\n", 1)[0].isascii()
    msg = parse(raw)
    assert msg["From"].addresses[0].display_name == "Zoë's Bücher, GmbH"
    names = [a.display_name for a in msg["To"].addresses]
    assert names == ["山田 太郎", 'Bob "B" (x)']


@pytest.mark.parametrize(
    "name",
    [
        "Интернет-магазин «Ромашка» — служба поддержки клиентов",
        "株式会社サンプル カスタマーサポートセンター 東京本社",
        "Zoë Müller-Lüdenscheidt, Geschäftsführerin der Bücherstube",
    ],
)
def test_long_non_ascii_display_names_split_into_valid_encoded_words(name: str) -> None:
    raw = build(to=(Mailbox("a@example.com", name),))
    folded = parse(raw).get("To")
    assert folded is not None
    # CPython 3.11's address parser puts a space between adjacent encoded
    # words, which RFC 2047 §6.2 says to ignore; decode the way MUAs do.
    to_lines = re.search(rb"\r\nTo: (.*?)\r\n(?! )", raw, re.S)
    assert to_lines is not None
    decoded = str(make_header(decode_header(to_lines.group(1).decode("ascii"))))
    assert decoded == f"{name} <a@example.com>"
    for line in to_lines.group(0).split(b"\r\n"):
        assert len(line) <= 78


def test_idna_domains_are_encoded() -> None:
    raw = build(
        to=(Mailbox("kunde@bücher.example"),),
        message_id_domain="mail.bücher.example",
    )
    msg = parse(raw)
    assert msg["To"].addresses[0].addr_spec == "kunde@xn--bcher-kva.example"
    assert msg["Message-ID"] == "<msg_01HXYZ@mail.xn--bcher-kva.example>"


def test_non_ascii_local_part_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^To: .*non-ASCII local part"):
        build(to=(Mailbox("jöran@example.com"),))


def test_list_unsubscribe_one_click() -> None:
    url = "https://t.example.com/t/u/" + "tok" * 40
    raw = build(
        list_unsubscribe_urls=(url,),
        list_unsubscribe_mailto="unsub+msg_01HXYZ@bounce.example.com",
    )
    msg = parse(raw)
    value = re.sub(r"\s+", " ", str(msg["List-Unsubscribe"]))
    assert value == f"<{url}>, <mailto:unsub+msg_01HXYZ@bounce.example.com>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]  # never an encoded word
    assert_wire_format(raw)


def test_mailto_only_has_no_one_click_post() -> None:
    msg = parse(build(list_unsubscribe_mailto="mailto:u@example.com?subject=unsubscribe"))
    assert msg["List-Unsubscribe"] == "<mailto:u@example.com?subject=unsubscribe>"
    assert "List-Unsubscribe-Post" not in msg


def test_commas_in_unsubscribe_urls_are_encoded() -> None:
    msg = parse(build(list_unsubscribe_urls=("https://x.example/u?a=1,2",)))
    assert msg["List-Unsubscribe"] == "<https://x.example/u?a=1%2C2>"


def test_no_list_unsubscribe_without_urls() -> None:
    msg = parse(build())
    assert "List-Unsubscribe" not in msg
    assert "List-Unsubscribe-Post" not in msg


def test_custom_headers_are_added_and_encoded() -> None:
    raw = build(headers=(("X-Campaign", "spring"), ("X-Note", "für dich"), ("X-Empty", "")))
    msg = parse(raw)
    assert msg["X-Campaign"] == "spring"
    assert msg["X-Note"] == "für dich"
    assert "X-Empty" in msg


def test_custom_headers_override_defaults() -> None:
    raw = build(
        headers=(("Message-ID", "<own@example.org>"), ("List-Unsubscribe", "<mailto:x@y.z>")),
        list_unsubscribe_urls=("https://t.example.com/u/1",),
    )
    msg = parse(raw)
    assert msg.get_all("Message-ID") == ["<own@example.org>"]
    assert msg.get_all("List-Unsubscribe") == ["<mailto:x@y.z>"]
    assert "List-Unsubscribe-Post" not in msg  # our one-click promise went with our URL


def test_forbidden_header_list_matches_sendgrid() -> None:
    assert {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    } == FORBIDDEN_HEADERS


@pytest.mark.parametrize("name", ["Subject", "BCC", "DKIM-Signature", "X-Postyard-Message-Id"])
def test_forbidden_and_reserved_custom_headers_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"header '{name}' may not be set"):
        build(headers=((name, "x"),))


def test_bad_and_duplicate_header_names_are_refused() -> None:
    with pytest.raises(ValueError, match="not valid"):
        build(headers=(("X Bad", "x"),))
    with pytest.raises(ValueError, match="more than once"):
        build(headers=(("X-A", "1"), ("x-a", "2")))


# ---------------------------------------------------------------- header injection


@pytest.mark.parametrize(
    ("changes", "header"),
    [
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "Subject"),
        ({"subject": "Hi\nX-Evil: 1"}, "Subject"),
        ({"to": (Mailbox("a@example.com", "Ann\r\nBcc: v@example.com"),)}, "To"),
        ({"from_": Mailbox("a@example.com\nBcc: v@example.com")}, "From"),
        ({"cc": (Mailbox("c@example.com", "C\rX"),)}, "Cc"),
        ({"reply_to": (Mailbox("r@example.com", "R\x00"),)}, "Reply-To"),
        ({"headers": (("X-Custom", "ok\r\nBcc: v@example.com"),)}, "X-Custom"),
        ({"list_unsubscribe_urls": ("https://x.example/u\r\nBcc: v",)}, "List-Unsubscribe"),
        ({"attachments": (Attachment("a\r\n.txt", b"x"),)}, "Content-Disposition"),
        ({"attachments": (Attachment("a.txt", b"x", "text/plain\r\nX: 1"),)}, "Content-Type"),
        ({"attachments": (Attachment("a.png", b"x", content_id="a\nb"),)}, "Content-ID"),
    ],
)
def test_header_injection_is_refused_naming_the_header(
    changes: dict[str, object], header: str
) -> None:
    with pytest.raises(ValueError, match=f"header '{header}' contains a line break"):
        build(**changes)


# ---------------------------------------------------------------- bodies


def test_plain_ascii_short_lines_stay_7bit() -> None:
    msg = parse(build(text="line one\nline two\n", html="<p>short</p>"))
    for part in msg.iter_parts():
        assert part["Content-Transfer-Encoding"] == "7bit"


def test_long_lines_become_quoted_printable() -> None:
    long_line = "word " * 400
    raw = build(text=long_line, html="<p>" + "x" * 2000 + "</p>")
    msg = parse(raw)
    text, html = msg.iter_parts()
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(text).rstrip("\n") == long_line
    assert content(html).rstrip("\n") == "<p>" + "x" * 2000 + "</p>"
    assert_wire_format(raw)


def test_non_ascii_latin_text_is_quoted_printable() -> None:
    text = "Grüße aus Köln, señor, ça va?\nZweite Zeile."
    msg = parse(build(text=text))
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(msg).rstrip("\n") == text


def test_non_latin_text_round_trips() -> None:
    text = "ご注文ありがとうございます。\n" * 30
    raw = build(text=text)
    msg = parse(raw)
    assert msg["Content-Transfer-Encoding"] in ("base64", "quoted-printable")
    assert content(msg) == text
    assert_wire_format(raw)


def test_body_line_endings_are_crlf_whatever_the_input() -> None:
    raw = build(text="a\nb\r\nc\rd", html="<p>\n</p>")
    assert_wire_format(raw)
    text = parse(raw).get_body(("plain",))
    assert text is not None
    assert content(text) == "a\nb\nc\nd\n"


def test_non_ascii_attachment_filename_round_trips_via_rfc2231() -> None:
    name = "Rechnung März – ümlaut " + "ä" * 60 + ".pdf"
    raw = build(attachments=(Attachment(name, b"%PDF", "application/pdf"),))
    msg = parse(raw)
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == name
    assert raw.isascii()
    assert_wire_format(raw)


def test_big_attachment_lines_stay_short() -> None:
    blob = bytes(range(256)) * 4000
    raw = build(attachments=(Attachment("blob.bin", blob),))
    assert_wire_format(raw)
    (attachment,) = list(parse(raw).iter_attachments())
    assert attachment.get_content() == blob
