"""Webhook signatures: SendGrid's golden vector, and ours verified by SendGrid's helper."""

from __future__ import annotations

import base64

import pytest
from sendgrid.helpers.eventwebhook import EventWebhook

from appliance.domain.webhook_signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SigningKeyError,
    generate_key_pair,
    sign,
    verify,
)

# sendgrid-compat.md §8.4 (sendgrid-python test/unit/test_eventwebhook.py)
GOLDEN_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3G"
    "Rqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
GOLDEN_TIMESTAMP = "1600112502"
GOLDEN_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M"
    "15TluLtEZtM="
)
GOLDEN_BODY = (
    b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address",'
    b'"sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",'
    b'"sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",'
    b'"smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n'
)


def test_golden_vector_verifies() -> None:
    assert verify(GOLDEN_KEY, GOLDEN_TIMESTAMP, GOLDEN_BODY, GOLDEN_SIGNATURE)


def test_golden_vector_fails_without_the_trailing_crlf() -> None:
    assert not verify(GOLDEN_KEY, GOLDEN_TIMESTAMP, GOLDEN_BODY[:-2], GOLDEN_SIGNATURE)
    assert not verify(GOLDEN_KEY, "1600112503", GOLDEN_BODY, GOLDEN_SIGNATURE)


def test_golden_vector_verifies_with_sendgrid_helper_too() -> None:
    helper = EventWebhook(GOLDEN_KEY)
    assert helper.verify_signature(GOLDEN_BODY.decode(), GOLDEN_SIGNATURE, GOLDEN_TIMESTAMP)


def test_our_signature_verifies_with_sendgrid_helper() -> None:
    pair = generate_key_pair()
    body = b'[{"email":"a@example.test","event":"processed","timestamp":1700000000}]\r\n'
    headers = sign(pair.private_key_pem, 1700000123, body)
    assert headers[TIMESTAMP_HEADER] == "1700000123"
    helper = EventWebhook(pair.public_key)
    assert helper.verify_signature(body.decode(), headers[SIGNATURE_HEADER], "1700000123")
    assert verify(pair.public_key, "1700000123", body, headers[SIGNATURE_HEADER])
    # Any change to body or timestamp breaks it.
    assert not helper.verify_signature(body.decode()[:-2], headers[SIGNATURE_HEADER], "1700000123")
    assert not verify(pair.public_key, "1700000124", body, headers[SIGNATURE_HEADER])


def test_public_key_is_base64_der_spki_of_p256() -> None:
    pair = generate_key_pair()
    der = base64.b64decode(pair.public_key)
    # SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (65-byte point) }
    assert len(der) == 91 and der[:2] == b"\x30\x59"
    assert pair.private_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_bad_keys_are_named() -> None:
    with pytest.raises(SigningKeyError, match="base64 DER"):
        verify("not base64!", "1", b"", "")
    with pytest.raises(SigningKeyError, match="cannot be read"):
        sign(b"garbage", 1, b"")
    assert not verify(GOLDEN_KEY, GOLDEN_TIMESTAMP, GOLDEN_BODY, "@@@")
