"""DKIM key pairs: generation, PEM storage and the public DNS TXT value.

A sending domain owns one active key pair. The private key is stored as an
unencrypted PKCS#8 PEM (the data directory is the secret store); the public
half is published at ``<selector>._domainkey.<domain>`` as

- RSA (RFC 6376 §3.6.1): ``v=DKIM1; k=rsa; p=<base64 DER SubjectPublicKeyInfo>``
- Ed25519 (RFC 8463 §4.2): ``v=DKIM1; k=ed25519; p=<base64 raw 32-byte key>``

RSA-2048 is the default: every receiver verifies it, while Ed25519 alone is
still ignored by some large mailbox providers (publish it next to an RSA key).

Selectors are ``py`` + the UTC date + 4 random hex digits, e.g.
``py20260512a3f9``: the date tells an operator at a glance how old the
published key is, and the random tail lets two rotations on one day publish
side by side (the old key must stay in DNS until mail signed with it has been
delivered).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
from dataclasses import dataclass
from enum import Enum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from appliance.protocols.dkim_signer import MIN_RSA_BITS, DkimKeyError
from appliance.protocols.dkim_signer import SigningKey as DkimPrivateKey
from appliance.protocols.dkim_signer import load_signing_key as load_private_key

__all__ = [
    "MIN_RSA_BITS",
    "SELECTOR_PREFIX",
    "DkimAlgorithm",
    "DkimKeyError",
    "DkimKeyPair",
    "DkimPrivateKey",
    "algorithm_of",
    "check_selector",
    "generate_key_pair",
    "load_private_key",
    "new_selector",
    "private_key_to_pem",
    "public_key_b64",
    "public_txt_value",
]


SELECTOR_PREFIX = "py"
_SELECTOR_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class DkimAlgorithm(Enum):
    """Signing algorithm, named as in the ``a=`` tag."""

    RSA_SHA256 = "rsa-sha256"
    ED25519_SHA256 = "ed25519-sha256"

    @property
    def key_type(self) -> str:
        """The ``k=`` tag of the DNS key record."""
        return "rsa" if self is DkimAlgorithm.RSA_SHA256 else "ed25519"


@dataclass(frozen=True, slots=True)
class DkimKeyPair:
    """A generated key pair and everything needed to publish and use it."""

    algorithm: DkimAlgorithm
    selector: str
    private_key_pem: bytes
    public_txt: str

    def __repr__(self) -> str:  # never print the private key by accident
        return f"DkimKeyPair({self.algorithm.value}, selector={self.selector!r})"


def new_selector(today: dt.date | None = None, *, suffix: str | None = None) -> str:
    """Return a fresh selector such as ``py20260512a3f9``.

    ``today`` defaults to the current UTC date and ``suffix`` to 4 random hex
    digits; pass both for a deterministic selector.
    """
    day = today or dt.datetime.now(dt.UTC).date()
    tail = secrets.token_hex(2) if suffix is None else suffix
    selector = f"{SELECTOR_PREFIX}{day:%Y%m%d}{tail}"
    check_selector(selector)
    return selector


def check_selector(selector: str) -> None:
    """Raise ValueError unless ``selector`` is one lowercase DNS label."""
    if not _SELECTOR_RE.match(selector):
        raise ValueError(
            f"DKIM selector {selector!r} must be one DNS label: lowercase letters, "
            "digits and inner hyphens, at most 63 characters"
        )


def generate_key_pair(
    algorithm: DkimAlgorithm = DkimAlgorithm.RSA_SHA256,
    *,
    selector: str | None = None,
    rsa_bits: int = 2048,
) -> DkimKeyPair:
    """Generate a new key pair (RSA-2048 unless told otherwise)."""
    key: DkimPrivateKey
    if algorithm is DkimAlgorithm.RSA_SHA256:
        if rsa_bits < MIN_RSA_BITS:
            raise ValueError(f"RSA DKIM keys must have at least {MIN_RSA_BITS} bits")
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    chosen = selector if selector is not None else new_selector()
    check_selector(chosen)
    return DkimKeyPair(
        algorithm=algorithm,
        selector=chosen,
        private_key_pem=private_key_to_pem(key),
        public_txt=public_txt_value(key),
    )


def private_key_to_pem(key: DkimPrivateKey) -> bytes:
    """Serialize as unencrypted PKCS#8 PEM (readable by dkimpy and OpenSSL)."""
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def algorithm_of(key: DkimPrivateKey) -> DkimAlgorithm:
    if isinstance(key, rsa.RSAPrivateKey):
        return DkimAlgorithm.RSA_SHA256
    return DkimAlgorithm.ED25519_SHA256


def public_key_b64(key: DkimPrivateKey) -> str:
    """The ``p=`` value: base64 of the DER SubjectPublicKeyInfo (RSA) or raw key (Ed25519)."""
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        der = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    return base64.b64encode(der).decode("ascii")


def public_txt_value(key: DkimPrivateKey) -> str:
    """The whole TXT value to publish, e.g. ``v=DKIM1; k=rsa; p=MIIBIjAN…``."""
    return f"v=DKIM1; k={algorithm_of(key).key_type}; p={public_key_b64(key)}"
