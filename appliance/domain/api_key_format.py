"""The SendGrid-style API key format ``SG.<id>.<secret>`` and its hash.

The id (22 characters) is public and names the key in the API; the secret
(43 characters) is shown once and stored only as a SHA-256 hash. Keys carry
256 bits of randomness, so a fast hash is the right one: a slow password
hash would cost every API request milliseconds and add no safety.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "SG"
ID_LENGTH = 22
SECRET_LENGTH = 43
_KEY_RE = re.compile(r"^SG\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$")


def _token(nbytes: int, length: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode().rstrip("=")[:length]


@dataclass(frozen=True, slots=True)
class ApiKeySecret:
    key_id: str
    secret: str

    @classmethod
    def generate(cls) -> ApiKeySecret:
        return cls(_token(16, ID_LENGTH), _token(32, SECRET_LENGTH))

    @classmethod
    def parse(cls, text: str) -> ApiKeySecret | None:
        """Split a presented key; None when it is not in our format."""
        m = _KEY_RE.match(text.strip())
        return cls(m.group(1), m.group(2)) if m else None

    @property
    def token(self) -> str:
        """The whole key as the client uses it (69 characters)."""
        return f"{PREFIX}.{self.key_id}.{self.secret}"

    def secret_hash(self) -> str:
        return hash_secret(self.secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
