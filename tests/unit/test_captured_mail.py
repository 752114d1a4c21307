"""``domain.captured_mail``: what the capture mailbox shows of a message."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

from appliance.domain.captured_mail import Attachment, subject_of, view_of


def _message() -> bytes:
    m = EmailMessage()
    m["Subject"] = "Grüße aus Köln, a subject long enough to be folded over two lines or more"
    m["From"] = "Shop <shop@sender.test>"
    m["To"] = "ana@example.org"
    m.set_content("Hallo Ana")
    m.add_alternative("<p>Hallo <b>Ana</b></p>", subtype="html")
    html = m.get_payload()[1]
    html.add_related(b"\x89PNG....", maintype="image", subtype="png", cid="<logo@shop>")
    m.add_attachment(b"\x00" * 1000, maintype="application", subtype="pdf", filename="a.pdf")
    inner = EmailMessage()
    inner["Subject"] = "forwarded"
    inner.set_content("inner body")
    m.add_attachment(inner)
    return m.as_bytes(policy=SMTP)


def test_bodies_headers_and_attachments_are_decoded() -> None:
    raw = _message()
    view = view_of(raw)
    subject = "Grüße aus Köln, a subject long enough to be folded over two lines or more"
    assert view.subject == subject == subject_of(raw)
    assert [h.name for h in view.headers][:3] == ["Subject", "From", "To"]
    assert view.headers[0].value == subject, "folding and RFC 2047 words are undone"
    assert view.text == "Hallo Ana\n"
    assert view.html == "<p>Hallo <b>Ana</b></p>\n"
    assert view.attachments[0] == Attachment(None, "image/png", 8, "inline", "logo@shop")
    assert view.attachments[1] == Attachment("a.pdf", "application/pdf", 1000, "attachment", None)
    forwarded = view.attachments[2]
    assert forwarded.content_type == "message/rfc822" and forwarded.size > 0
    assert len(view.attachments) == 3, "the attached message's own parts are not listed"


def test_a_lying_charset_still_shows_the_text() -> None:
    raw = (
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\ncaf\xc3\xa9\r\n"
    )
    view = view_of(raw)
    assert view.subject == "café"
    assert view.text == "café\n"
    assert view.html is None and view.attachments == ()


def test_a_message_that_is_only_an_image_is_one_attachment() -> None:
    raw = b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    view = view_of(raw)
    assert view.text is None and view.subject == ""
    assert view.attachments == (Attachment(None, "image/png", 8, None, None),)


def test_subject_of_reads_only_the_header_section() -> None:
    assert subject_of(b"To: a@b.test\r\n\r\nSubject: not a header\r\n") == ""
    assert subject_of(b"") == ""
