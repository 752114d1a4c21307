"""DkimSigner: verifies with dkimpy, matches dkimpy byte for byte, fails when tampered."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

from appliance.domain.dkim_keys import (
    DkimAlgorithm,
    DkimKeyPair,
    generate_key_pair,
    load_private_key,
    new_selector,
)
from appliance.net.dns import dkimpy_dnsfunc
from appliance.protocols.dkim_signer import DkimMessageError, DkimSigner

DOMAIN = "example.com"
T = 1_715_500_000

MESSAGE = (
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: bob@example.org\r\n"
    b"Cc: carol@example.net\r\n"
    b"Subject: Your receipt\r\n"
    b"  folded onto a second line\r\n"
    b"Date: Sun, 12 May 2024 09:00:00 +0000\r\n"
    b"Message-ID: <msg_1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"List-Unsubscribe: <https://example.com/t/u/abc>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"X-Postyard-Message-Id: msg_1\r\n"
    b"X-Mailer: not signed\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b"\r\n"
    b"thanks  for   your order.   \r\n"
    b"\r\n"
    b"\r\n"
)


@pytest.fixture(scope="module")
def rsa_pair() -> DkimKeyPair:
    return generate_key_pair(DkimAlgorithm.RSA_SHA256, selector="py20240512rsa0")


@pytest.fixture(scope="module")
def ed_pair() -> DkimKeyPair:
    return generate_key_pair(DkimAlgorithm.ED25519_SHA256, selector="py20240512ed00")


def dnsfunc_for(pair: DkimKeyPair) -> Callable[..., bytes | None]:
    return dkimpy_dnsfunc({f"{pair.selector}._domainkey.{DOMAIN}": [pair.public_txt]})


def dkimpy_sign(
    signer: DkimSigner,
    pem: bytes,
    message: bytes,
    monkeypatch: pytest.MonkeyPatch,
    *,
    algorithm: bytes = b"rsa-sha256",
) -> bytes:
    """dkimpy's own signature with the same headers and t= as ours."""
    monkeypatch.setattr(dkim.time, "time", lambda: float(T))
    return bytes(
        dkim.sign(
            message,
            signer.selector.encode(),
            DOMAIN.encode(),
            pem,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=algorithm,
            include_headers=list(signer.include_headers(message)),
        )
    )


def test_rsa_signature_verifies_with_dkimpy_against_published_txt(rsa_pair: DkimKeyPair) -> None:
    signer = DkimSigner(DOMAIN, rsa_pair.selector, rsa_pair.private_key_pem)
    signed = signer.sign(MESSAGE) + MESSAGE
    assert dkim.verify(signed, dnsfunc=dnsfunc_for(rsa_pair))


def test_ed25519_signature_verifies_with_dkimpy_against_published_txt(
    ed_pair: DkimKeyPair,
) -> None:
    pytest.importorskip("nacl.signing", reason="dkimpy verifies Ed25519 with PyNaCl")
    signer = DkimSigner(DOMAIN, ed_pair.selector, ed_pair.private_key_pem)
    assert signer.algorithm == "ed25519-sha256"
    signed = signer.sign(MESSAGE) + MESSAGE
    assert dkim.verify(signed, dnsfunc=dnsfunc_for(ed_pair))


def test_rsa_signature_is_byte_identical_to_dkimpy(
    rsa_pair: DkimKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = DkimSigner(DOMAIN, rsa_pair.selector, rsa_pair.private_key_pem)
    ours = signer.sign(MESSAGE, timestamp=T)
    assert ours == dkimpy_sign(signer, rsa_pair.private_key_pem, MESSAGE, monkeypatch)


def test_rsa_signature_is_byte_identical_to_dkimpy_with_lf_line_endings(
    rsa_pair: DkimKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = MESSAGE.replace(b"\r\n", b"\n")
    signer = DkimSigner(DOMAIN, rsa_pair.selector, rsa_pair.private_key_pem)
    ours = signer.sign(message, timestamp=T)
    assert ours == dkimpy_sign(signer, rsa_pair.private_key_pem, message, monkeypatch)
    assert dkim.verify(ours + MESSAGE, dnsfunc=dnsfunc_for(rsa_pair))


def test_ed25519_signature_is_byte_identical_to_dkimpy(
    ed_pair: DkimKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("nacl.signing", reason="dkimpy signs Ed25519 with PyNaCl")
    key = load_private_key(ed_pair.private_key_pem)
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    signer = DkimSigner(DOMAIN, ed_pair.selector, ed_pair.private_key_pem)
    ours = signer.sign(MESSAGE, timestamp=T)
    theirs = dkimpy_sign(
        signer, base64.b64encode(seed), MESSAGE, monkeypatch, algorithm=b"ed25519-sha256"
    )
    assert ours == theirs


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"thanks  for", b"thanks fro"),
        (b"Subject: Your receipt", b"Subject: Your refund"),
        (b"From: Alice Example", b"From: Mallory Example"),
    ],
    ids=["body", "subject", "from"],
)
@pytest.mark.parametrize("pair_name", ["rsa_pair", "ed_pair"])
def test_tampered_message_fails_verification(
    pair_name: str, old: bytes, new: bytes, request: pytest.FixtureRequest
) -> None:
    pair: DkimKeyPair = request.getfixturevalue(pair_name)
    if pair.algorithm is DkimAlgorithm.ED25519_SHA256:
        pytest.importorskip("nacl.signing")
    signer = DkimSigner(DOMAIN, pair.selector, pair.private_key_pem)
    signed = signer.sign(MESSAGE) + MESSAGE
    assert dkim.verify(signed, dnsfunc=dnsfunc_for(pair))
    assert old in signed
    assert not dkim.verify(signed.replace(old, new), dnsfunc=dnsfunc_for(pair))


def test_second_from_added_in_transit_breaks_signature(rsa_pair: DkimKeyPair) -> None:
    signer = DkimSigner(DOMAIN, rsa_pair.selector, rsa_pair.private_key_pem)
    signed = signer.sign(MESSAGE) + MESSAGE
    forged = signed.replace(b"To: bob", b"From: ceo@example.com\r\nTo: bob", 1)
    assert not dkim.verify(forged, dnsfunc=dnsfunc_for(rsa_pair))


def test_only_present_headers_are_signed_and_from_is_oversigned(rsa_pair: DkimKeyPair) -> None:
    signer = DkimSigner(DOMAIN, rsa_pair.selector, rsa_pair.private_key_pem)
    assert signer.include_headers(MESSAGE) == (
        b"from",
        b"to",
        b"cc",
        b"subject",
        b"date",
        b"message-id",
        b"mime-version",
        b"content-type",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
        b"x-postyard-message-id",
        b"from",
    )
    header = signer.sign(MESSAGE, timestamp=T)
    unfolded = header.replace(b"\r\n ", b" ")
    assert header.startswith(
        b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;"
    )
    assert header.endswith(b"\r\n")
    assert b"x-mailer" not in unfolded
    assert b" t=1715500000;" in unfolded
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))


def test_message_without_from_is_refused(rsa_pair: DkimKeyPair) -> None:
    signer = DkimSigner(DOMAIN, rsa_pair.selector, rsa_pair.private_key_pem)
    with pytest.raises(DkimMessageError, match="no From"):
        signer.sign(b"To: bob@example.org\r\nSubject: x\r\n\r\nbody\r\n")


def test_public_txt_values_have_the_published_form(
    rsa_pair: DkimKeyPair, ed_pair: DkimKeyPair
) -> None:
    assert rsa_pair.public_txt.startswith("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A")
    p = ed_pair.public_txt.removeprefix("v=DKIM1; k=ed25519; p=")
    assert len(base64.b64decode(p, validate=True)) == 32
    assert b"PRIVATE" not in repr(rsa_pair).encode()


def test_selector_is_py_date_and_random_suffix() -> None:
    assert new_selector(dt.date(2026, 5, 12), suffix="a3f9") == "py20260512a3f9"
    first, second = new_selector(), new_selector()
    assert first.startswith("py")
    assert len(first) == 14
    assert first != second
