"""DKIM signing (RFC 6376, RFC 8463): dkimpy's canonicalization, `cryptography`'s RSA.

Pure CPU, no I/O: bytes of a message in, the ``DKIM-Signature`` header field
to prepend out. Create one :class:`DkimSigner` per (domain, selector, key) and
reuse it; it keeps the parsed key.

Why not just ``dkim.sign()``: dkimpy does RSA in pure Python (~120 signatures/s
for RSA-2048, holding the GIL ~10 ms each) and re-parses the PEM with its own
ASN.1 code on every call. dkimpy has no hook for the signing primitive:
``DomainSigner.gen_header`` calls the module-level ``RSASSA_PKCS1_v1_5_sign``.
The options were

- monkeypatching ``dkim.RSASSA_PKCS1_v1_5_sign``: process-wide, silently
  changes every other dkimpy user (ARC, verification code) and breaks if
  dkimpy imports it differently; rejected;
- subclassing ``dkim.DKIM`` and overriding ``gen_header``: still copies
  gen_header's body, still re-parses the PEM per message, and still needs
  PyNaCl for Ed25519 because ``DKIM.sign`` parses Ed25519 keys with it;
- driving dkimpy's own building blocks in the order ``DKIM.sign`` and
  ``gen_header`` use them, and signing the resulting SHA-256 digest with
  `cryptography`. This is what we do.

So every byte that a verifier hashes comes from dkimpy: message parsing
(``rfc822_parse``), canonicalization (``CanonicalizationPolicy``), header
selection and hashing (``hash_headers``, which also strips ``b=``), and
folding (``fold``). Only the two lines that turn a digest into a signature are
ours. RSASSA-PKCS1-v1_5 and Ed25519 are deterministic, so the result is
byte-for-byte what ``dkim.sign()`` produces for the same message, key and
``t=``; ``tests/unit/test_dkim_signer.py`` asserts exactly that, so a dkimpy
upgrade that changes its header layout fails a test instead of mail.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from dkim.canonicalization import CanonicalizationPolicy

__all__ = [
    "DEFAULT_OVERSIGNED_HEADERS",
    "DEFAULT_SIGNED_HEADERS",
    "DkimKeyError",
    "DkimMessageError",
    "DkimSigner",
]

#: Header fields signed when present (each occurrence), in message order.
DEFAULT_SIGNED_HEADERS: tuple[str, ...] = (
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
    "x-postyard-message-id",
)

#: Header fields signed once more than they occur, so that a second one
#: cannot be added in transit without breaking the signature (RFC 6376 §8.15).
DEFAULT_OVERSIGNED_HEADERS: tuple[str, ...] = ("from",)

_HEADER_NAME = b"DKIM-Signature"
_CANONICALIZATION = b"relaxed/relaxed"
MIN_RSA_BITS = 1024  # RFC 8301 §3.2: verifiers MUST NOT accept shorter keys.


class DkimKeyError(ValueError):
    """The configured private key cannot sign (our configuration is wrong)."""


class DkimMessageError(ValueError):
    """The message cannot be signed as it stands (whoever built it is to blame)."""


SigningKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class DkimSigner:
    """Signs messages for one (domain, selector, private key).

    Thread-safe: the parsed key is only read, so ``sign`` may run in worker
    threads (``trio.to_thread.run_sync``) concurrently.
    """

    __slots__ = ("_algorithm", "_domain", "_key", "_oversigned", "_selector", "_signed")

    def __init__(
        self,
        domain: str,
        selector: str,
        private_key_pem: bytes,
        *,
        signed_headers: Iterable[str] = DEFAULT_SIGNED_HEADERS,
        oversigned_headers: Iterable[str] = DEFAULT_OVERSIGNED_HEADERS,
    ) -> None:
        self._domain = _ascii_name(domain.rstrip("."), "domain")
        self._selector = _ascii_name(selector, "selector")
        self._key = load_signing_key(private_key_pem)
        self._algorithm = (
            b"rsa-sha256" if isinstance(self._key, rsa.RSAPrivateKey) else b"ed25519-sha256"
        )
        self._signed = frozenset(h.lower().encode("ascii") for h in signed_headers)
        self._oversigned = frozenset(h.lower().encode("ascii") for h in oversigned_headers)
        if b"from" not in self._signed:
            raise ValueError("RFC 6376 §5.4: the From header field must be signed")

    @property
    def domain(self) -> str:
        return self._domain.decode("ascii")

    @property
    def selector(self) -> str:
        return self._selector.decode("ascii")

    @property
    def algorithm(self) -> str:
        """The ``a=`` tag: ``rsa-sha256`` or ``ed25519-sha256``."""
        return self._algorithm.decode("ascii")

    def include_headers(self, message: bytes) -> tuple[bytes, ...]:
        """The ``h=`` list for ``message``: present headers in order, then oversigned ones."""
        headers, _ = _parse(message)
        return self._include_headers(headers)

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """Return the ``DKIM-Signature: …\\r\\n`` field (folded, CRLF) to prepend.

        ``timestamp`` is the ``t=`` tag (default: now). Lines of ``message``
        may end in CRLF or LF.
        """
        headers, body = _parse(message)
        include = self._include_headers(headers)
        canon = CanonicalizationPolicy.from_c_value(_CANONICALIZATION)
        body_hash = base64.b64encode(hashlib.sha256(canon.canonicalize_body(body)).digest())
        t = int(time.time()) if timestamp is None else timestamp
        # Same tags, in the same order, as dkim.DKIM.sign().
        fields: list[tuple[bytes, bytes]] = [
            (b"v", b"1"),
            (b"a", self._algorithm),
            (b"c", _CANONICALIZATION),
            (b"d", self._domain),
            (b"i", b"@" + self._domain),
            (b"q", b"dns/txt"),
            (b"s", self._selector),
            (b"t", str(t).encode("ascii")),
            (b"h", b" : ".join(include)),
            (b"bh", body_hash),
            # A placeholder that forces b= onto its own folded line, so that
            # refolding with the real value leaves the hashed tags unchanged.
            (b"b", b"0" * 60),
        ]
        # As dkim.DomainSigner.gen_header(): fold, empty b=, hash the selected
        # canonical headers followed by this header (no trailing CRLF).
        unsigned = dkim.fold(_join(fields), namelen=len(_HEADER_NAME), linesep=b"\r\n")
        unsigned = dkim.RE_BTAG.sub(b"\\1", unsigned)
        digest = hashlib.sha256()
        dkim.hash_headers(
            digest,
            canon,
            canon.canonicalize_headers(headers),
            include,
            (_HEADER_NAME, b" " + unsigned),
            dict(fields),
        )
        fields[-1] = (b"b", base64.b64encode(self._sign_digest(digest.digest())))
        value = dkim.fold(_join(fields) + b"\r\n", namelen=len(_HEADER_NAME), linesep=b"\r\n")
        return _HEADER_NAME + b": " + bytes(value)

    def _sign_digest(self, digest: bytes) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            # EMSA-PKCS1-v1_5 over a SHA-256 DigestInfo, as dkim.crypto does.
            return self._key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        # RFC 8463 §3: Ed25519 (pure) over the SHA-256 hash of the header data.
        return self._key.sign(digest)

    def _include_headers(self, headers: list[list[bytes]]) -> tuple[bytes, ...]:
        present = [name.lower() for name, _ in headers if name.lower() in self._signed]
        if b"from" not in present:
            raise DkimMessageError("message has no From header field; DKIM requires one")
        return (*present, *(name for name in present if name in self._oversigned))

    def __repr__(self) -> str:
        return f"DkimSigner({self.domain!r}, {self.selector!r}, {self.algorithm})"


def load_signing_key(pem: bytes) -> SigningKey:
    """Parse a PEM private key (PKCS#8 or PKCS#1) usable for DKIM."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise DkimKeyError(f"DKIM private key is not an unencrypted PEM key: {exc}") from exc
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise DkimKeyError(
                f"DKIM RSA key has {key.key_size} bits; receivers reject keys "
                f"shorter than {MIN_RSA_BITS} (generate a new 2048-bit key)"
            )
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise DkimKeyError(f"DKIM keys must be RSA or Ed25519, not {type(key).__name__}")


def _parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    try:
        headers, body = dkim.rfc822_parse(message)
    except dkim.MessageFormatError as exc:
        raise DkimMessageError(f"message header section is malformed: {exc}") from exc
    return headers, body


def _join(fields: list[tuple[bytes, bytes]]) -> bytes:
    return b"; ".join(b"=".join(field) for field in fields)


def _ascii_name(value: str, what: str) -> bytes:
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(
            f"DKIM {what} {value!r} must be ASCII (use the IDNA A-label, xn--…)"
        ) from None
