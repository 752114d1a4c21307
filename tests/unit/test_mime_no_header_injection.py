"""Properties of MIME building: whatever text a request carries, no header is injected.

For any subject, display names, custom header values and bodies (non-ASCII,
control characters, CR/LF/NUL, very long lines) ``build_message`` either
refuses with a ``ValueError`` naming the header (only when a header value holds
CR, LF or NUL) or writes a message the stdlib parser reads back with exactly
the intended headers, each exactly once, every value and body as given.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.protocols.mime import Mailbox, MessageSpec, build_message

BASE = MessageSpec(
    from_=Mailbox("orders@example.com", "Orders"),
    to=(Mailbox("alex@example.com", "Alex"),),
    subject="Your order",
    postyard_message_id="msg_01HXYZ",
    message_id_domain="mail.example.com",
    date=datetime(2024, 4, 23, 12, 0, tzinfo=UTC),
    text="Hello",
)
BREAKS = "\r\n\0"
FIXED_HEADERS = ("from", "to", "subject", "date", "message-id", "mime-version")
FIXED_HEADERS += ("x-postyard-message-id", "content-type", "content-transfer-encoding")

# Any text: every code point but surrogates, with line breaks, NUL, the
# characters str.splitlines() treats as line ends, and header look-alikes.
_ANY_CHAR = st.characters(exclude_categories=["Cs"])
_TRICKY = st.sampled_from(
    ["\r\n", "\n", "\r", "\0", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", ": ",
     "\r\nBcc: victim@example.net", "\nX-Injected: 1", "=?utf-8?q?x?=", '"', "\\", ",", "<>",
     "\t", "  "]
)  # fmt: skip
_TEXT = st.lists(st.one_of(st.text(_ANY_CHAR, max_size=12), _TRICKY), max_size=8).map("".join)
_LONG_WORD = st.builds(lambda c, n: c * n, st.sampled_from("xé日"), st.integers(900, 2500))
_VALUE = st.one_of(_TEXT, _LONG_WORD, st.builds("{} {}".format, _TEXT, _LONG_WORD))
_HEADER_NAME = st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True)


def parse(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def header_counts(raw: bytes) -> Counter[str]:
    """Header field names of the top level as the parser sees them, lower-cased."""
    return Counter(name.lower() for name in parse(raw))


def assert_wire_format(raw: bytes) -> None:
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF"
    assert b"\r" not in raw.replace(b"\r\n", b""), "bare CR"
    assert b"\0" not in raw, "NUL on the wire"
    assert raw.isascii(), "8-bit data without 8BITMIME"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def has_break(*values: str) -> bool:
    return any(c in v for v in values for c in BREAKS)


def build_or_refusal(spec: MessageSpec) -> bytes | str:
    try:
        return build_message(spec)
    except ValueError as exc:
        return str(exc)


def display_name(header: object) -> str:
    """The one display name, white space removed: CPython 3.11's address parser
    puts a space between adjacent encoded words (RFC 2047 §6.2 says to ignore it)
    and reads a TAB in a name as a space; test_mime checks exact decoding."""
    addresses = getattr(header, "addresses")  # noqa: B009  (AddressHeader)
    assert len(addresses) == 1, addresses
    return "".join(str(addresses[0].display_name).split())


def squeezed(name: str) -> str:
    return "".join(name.split())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=_VALUE, from_name=_TEXT, to_name=_TEXT, cc_name=_TEXT, reply_name=_TEXT)
def test_any_subject_and_display_names_never_add_a_header(
    subject: str, from_name: str, to_name: str, cc_name: str, reply_name: str
) -> None:
    spec = dataclasses.replace(
        BASE,
        subject=subject,
        from_=Mailbox("orders@example.com", from_name),
        to=(Mailbox("alex@example.com", to_name),),
        cc=(Mailbox("cc@example.com", cc_name),),
        reply_to=(Mailbox("help@example.com", reply_name),),
    )
    raw = build_or_refusal(spec)
    # A display name is stripped first: one that is only white space is no name.
    names = (from_name.strip(), to_name.strip(), cc_name.strip(), reply_name.strip())
    if has_break(subject, *names):
        assert isinstance(raw, str) and "contains a line break or NUL" in raw, raw
        return
    assert isinstance(raw, bytes), raw
    assert_wire_format(raw)
    assert header_counts(raw) == Counter([*FIXED_HEADERS, "cc", "reply-to"])
    msg = parse(raw)
    assert msg["Subject"] == subject.strip(" \t")
    assert display_name(msg["From"]) == squeezed(from_name)
    assert display_name(msg["To"]) == squeezed(to_name)
    assert display_name(msg["Cc"]) == squeezed(cc_name)
    assert display_name(msg["Reply-To"]) == squeezed(reply_name)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=st.dictionaries(_HEADER_NAME.map(str.title), _VALUE, max_size=4))
def test_any_custom_header_values_stay_in_their_own_header(headers: dict[str, str]) -> None:
    lowered = {name.lower(): value for name, value in headers.items()}
    spec = dataclasses.replace(BASE, headers=tuple(headers.items()))
    raw = build_or_refusal(spec)
    if len(lowered) < len(headers):
        assert isinstance(raw, str) and "more than once" in raw
        return
    if has_break(*headers.values()):
        assert isinstance(raw, str) and "contains a line break or NUL" in raw, raw
        return
    assert isinstance(raw, bytes), raw
    assert_wire_format(raw)
    assert header_counts(raw) == Counter([*FIXED_HEADERS, *lowered])
    msg = parse(raw)
    for name, value in headers.items():
        assert msg[name] == value.strip(" \t"), name


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(_VALUE, st.none()), html=st.one_of(_VALUE, st.none()))
def test_any_body_round_trips_and_adds_no_header(text: str | None, html: str | None) -> None:
    raw = build_message(dataclasses.replace(BASE, text=text, html=html))
    assert_wire_format(raw)
    multipart = text is not None and html is not None
    top = [h for h in FIXED_HEADERS if not (multipart and h == "content-transfer-encoding")]
    assert header_counts(raw) == Counter(top)
    msg = parse(raw)
    for subtype, given_text in (("plain", text), ("html", html)):
        if given_text is None:
            continue
        part = msg.get_body((subtype,))
        assert part is not None
        if multipart:
            assert [k.lower() for k in part] == ["content-type", "content-transfer-encoding"]
        got = part.get_content()
        expected = given_text.replace("\r\n", "\n").replace("\r", "\n")
        assert got.replace("\r\n", "\n").rstrip("\n") == expected.rstrip("\n")


@pytest.mark.parametrize(
    "value",
    ["x" * 2000, "token=" + "a1" * 700, "mot " + "é" * 1500, "日本語" * 400],
)
def test_very_long_words_in_headers_are_encoded_not_refused(value: str) -> None:
    raw = build_message(dataclasses.replace(BASE, subject=value, headers=(("X-Long", value),)))
    assert_wire_format(raw)
    msg = parse(raw)
    assert msg["Subject"] == value
    assert msg["X-Long"] == value


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"])
def test_characters_splitlines_breaks_at_are_kept_in_bodies(char: str) -> None:
    """str.splitlines() ends lines at these; a message body must not."""
    text = f"before{char}after"
    msg = parse(build_message(dataclasses.replace(BASE, text=text, html=f"<p>{text}</p>")))
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().rstrip("\r\n") == text
    assert html.get_content().rstrip("\r\n") == f"<p>{text}</p>"
