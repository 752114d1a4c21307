"""Signed Event Webhook, exactly as SendGrid does it: pure, no I/O.

Each webhook that is signed has an ECDSA P-256 key pair. The public key is
shown as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo (a PEM
body without its BEGIN/END lines). Each POST carries

- ``X-Twilio-Email-Event-Webhook-Timestamp``: unix seconds, as a string;
- ``X-Twilio-Email-Event-Webhook-Signature``: base64 of the DER ECDSA
  signature (SHA-256) over ``timestamp + raw body``.

Receivers verify with SendGrid's helpers (``EventWebhook.verify_signature``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


class SigningKeyError(ValueError):
    """A stored or given key is not an ECDSA P-256 key in the expected encoding."""


@dataclass(frozen=True, slots=True)
class SigningKeyPair:
    public_key: str  # base64 DER SubjectPublicKeyInfo, as SendGrid shows it
    private_key_pem: bytes  # PKCS#8 PEM, unencrypted: encrypt it with the secret box


def generate_key_pair() -> SigningKeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKeyPair(public_key_text(key.public_key()), pem)


def public_key_text(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def _private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise SigningKeyError(f"webhook signing key cannot be read: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SigningKeyError("webhook signing key is not an ECDSA P-256 key")
    return key


def _public_key(text: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise SigningKeyError(f"public key is not base64 DER SubjectPublicKeyInfo: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise SigningKeyError("public key is not an ECDSA P-256 key")
    return key


def signed_bytes(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode("ascii") + body


def sign(private_key_pem: bytes, timestamp: int | str, body: bytes) -> dict[str, str]:
    """The two headers for a POST of ``body`` (the exact bytes sent) at ``timestamp``."""
    stamp = str(int(timestamp)) if isinstance(timestamp, int) else timestamp
    signature = _private_key(private_key_pem).sign(
        signed_bytes(stamp, body), ec.ECDSA(hashes.SHA256())
    )
    return {
        SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
        TIMESTAMP_HEADER: stamp,
    }


def verify(public_key: str, timestamp: str, body: bytes, signature: str) -> bool:
    """True when ``signature`` (base64 DER) signs ``timestamp + body`` with ``public_key``."""
    key = _public_key(public_key)
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, signed_bytes(timestamp, body), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
