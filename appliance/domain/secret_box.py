"""Encryption of secrets at rest (DKIM private keys, signing keys, relay passwords).

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) with a key kept
in the data directory or given by configuration. Rotating keys is possible
with several keys: the first encrypts, all of them decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretBoxError(Exception):
    """A secret could not be decrypted: wrong key or damaged data."""


class SecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
            self._primary = base64.urlsafe_b64decode(keys[0])
        except ValueError as exc:
            raise SecretBoxError(
                f"secret key is not a valid Fernet key ({exc}); "
                "generate one with `postyard init` or Fernet.generate_key()"
            ) from None

    @staticmethod
    def generate_key() -> bytes:
        return Fernet.generate_key()

    def derive(self, purpose: str) -> bytes:
        """A stable 32-byte key for one purpose (e.g. signing tracking links).

        Derived from the primary key with HMAC-SHA256, so one secret in the
        data directory serves every purpose without reusing key material.
        """
        return hmac.new(self._primary, purpose.encode(), hashlib.sha256).digest()

    def encrypt(self, plaintext: bytes) -> str:
        return self._fernet.encrypt(plaintext).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode("ascii"))
        except InvalidToken:
            raise SecretBoxError(
                "cannot decrypt a stored secret: the secret key differs from the one that "
                "encrypted it (check POSTYARD_SECRET_KEY / <data_dir>/secret.key)"
            ) from None
