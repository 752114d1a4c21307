"""Email address syntax: one check and one normal form for the whole appliance.

The HTTP API, both SMTP servers and the suppression lists all accept an
address through :func:`parse_address`, so an address that one of them takes
is taken by all, and two spellings of one mailbox compare equal everywhere.

What is accepted is an RFC 5322 ``addr-spec`` as mail APIs see it (SendGrid's
``format: email``): a dot-atom or quoted-string local part (UTF-8 allowed, RFC
6532), ``@``, and a DNS host name of at least two labels. Not accepted: display
names (``Ann <a@example.com>``), comments, domain literals (``a@[192.0.2.1]``),
surrounding white space, and a trailing dot on the domain.

The normal form keeps the local part as written (it is case-sensitive by the
RFC; mailbox providers decide) and writes the domain in lower case, as IDNA
A-labels (``bücher.example`` → ``xn--bcher-kva.example``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import idna

MAX_ADDRESS_LENGTH = 320
"""Octets in a whole address, as SendGrid counts it ("320 characters including
the local address, the `@`, and the domain")."""
MAX_LOCAL_PART_LENGTH = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN_LENGTH = 253  # RFC 1035 name length without the root dot

# atext (RFC 5322 §3.2.3) plus any non-ASCII character (RFC 6532 §3.2).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_DOT_ATOM_RE = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
# quoted-string without folding white space: qtext or a quoted-pair.
_QUOTED_RE = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"')
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class AddressProblem(Enum):
    """Why a string is not an address: callers word their own message from it."""

    TOO_LONG = "too long"
    SYNTAX = "not an addr-spec"


class InvalidAddressError(ValueError):
    """The text given (by a client, a peer or a list) is not a usable address."""

    def __init__(self, text: str, problem: AddressProblem, detail: str) -> None:
        super().__init__(f"{text!r} is not a valid email address: {detail}")
        self.text = text
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Address:
    """A syntactically valid address in normal form (see the module docstring)."""

    local_part: str
    domain: str  # lower case, IDNA A-labels

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain}"

    @property
    def key(self) -> str:
        """Case-insensitive identity, for duplicate checks and suppression look-ups.

        Mailbox providers treat local parts case-insensitively in practice, and so
        does SendGrid's suppression matching, so ``Ann@x`` and ``ann@X`` share a key.
        """
        return f"{self.local_part.casefold()}@{self.domain}"


def parse_address(text: str) -> Address:
    """Check ``text`` and return it in normal form, or raise InvalidAddressError."""
    if len(text.encode("utf-8")) > MAX_ADDRESS_LENGTH:
        raise InvalidAddressError(
            text, AddressProblem.TOO_LONG, f"longer than {MAX_ADDRESS_LENGTH} octets"
        )
    local_part, at, domain = text.rpartition("@")
    if not at:
        raise InvalidAddressError(text, AddressProblem.SYNTAX, "no @")
    _check_local_part(text, local_part)
    return Address(local_part, _normalize_domain(text, domain))


def normalize_address(text: str) -> str:
    """``str(parse_address(text))``: the address in normal form."""
    return str(parse_address(text))


def is_valid_address(text: str) -> bool:
    """Whether :func:`parse_address` accepts ``text``."""
    try:
        parse_address(text)
    except InvalidAddressError:
        return False
    return True


def _check_local_part(text: str, local_part: str) -> None:
    if not local_part:
        raise InvalidAddressError(text, AddressProblem.SYNTAX, "empty local part")
    if len(local_part.encode("utf-8")) > MAX_LOCAL_PART_LENGTH:
        raise InvalidAddressError(
            text, AddressProblem.SYNTAX, f"local part longer than {MAX_LOCAL_PART_LENGTH} octets"
        )
    if _DOT_ATOM_RE.fullmatch(local_part) is None and _QUOTED_RE.fullmatch(local_part) is None:
        raise InvalidAddressError(
            text, AddressProblem.SYNTAX, "local part is neither a dot-atom nor a quoted string"
        )


def _normalize_domain(text: str, domain: str) -> str:
    if not domain:
        raise InvalidAddressError(text, AddressProblem.SYNTAX, "empty domain")
    if domain.isascii():
        ascii_domain = domain.lower()
    else:
        try:
            ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidAddressError(
                text, AddressProblem.SYNTAX, f"domain is not a valid IDNA name ({exc})"
            ) from None
    if len(ascii_domain) > MAX_DOMAIN_LENGTH:
        raise InvalidAddressError(
            text, AddressProblem.SYNTAX, f"domain longer than {MAX_DOMAIN_LENGTH} octets"
        )
    labels = ascii_domain.split(".")
    if len(labels) < 2:
        raise InvalidAddressError(text, AddressProblem.SYNTAX, "domain has no dot")
    for label in labels:
        if _LABEL_RE.fullmatch(label) is None:
            raise InvalidAddressError(
                text, AddressProblem.SYNTAX, f"domain label {label!r} is not a host name label"
            )
    if labels[-1].isdigit():
        raise InvalidAddressError(text, AddressProblem.SYNTAX, "top-level domain is all digits")
    return ascii_domain
