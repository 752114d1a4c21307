"""SMTP replies and enhanced status codes (RFC 5321 §4.2, RFC 3463).

Shared by the SMTP client and server cores, the DSN parser and the bounce
classifier, so that a reply means the same thing wherever it is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

_ENHANCED_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
_ENHANCED_IN_TEXT_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


class ReplyClass(Enum):
    """The first digit of a reply code, by what the sender must do next."""

    POSITIVE_COMPLETION = 2
    POSITIVE_INTERMEDIATE = 3
    TRANSIENT_FAILURE = 4
    PERMANENT_FAILURE = 5


@dataclass(frozen=True, slots=True)
class EnhancedStatus:
    """An RFC 3463 enhanced status code such as ``5.1.1``."""

    klass: int
    subject: int
    detail: int

    def __post_init__(self) -> None:
        if self.klass not in (2, 4, 5):
            raise ValueError(f"enhanced status class must be 2, 4 or 5, not {self.klass}")
        if not (0 <= self.subject <= 999 and 0 <= self.detail <= 999):
            raise ValueError(f"enhanced status parts out of range: {self}")

    @classmethod
    def parse(cls, text: str) -> EnhancedStatus | None:
        """Parse ``"5.1.1"``; return None for anything that is not one."""
        m = _ENHANCED_RE.match(text.strip())
        if m is None:
            return None
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))

    @classmethod
    def search(cls, text: str) -> EnhancedStatus | None:
        """Find the first enhanced status code anywhere in free text."""
        m = _ENHANCED_IN_TEXT_RE.search(text)
        if m is None:
            return None
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete (possibly multi-line) SMTP reply.

    ``lines`` hold the text after the code and separator, with the enhanced
    status code, when present on the first line, split off into ``enhanced``.
    """

    code: int
    lines: tuple[str, ...]
    enhanced: EnhancedStatus | None = None

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"SMTP reply code out of range: {self.code}")

    @property
    def klass(self) -> ReplyClass:
        return ReplyClass(self.code // 100)

    @property
    def text(self) -> str:
        """The reply text as one string (lines joined with a space)."""
        return " ".join(line for line in self.lines if line)

    def is_positive(self) -> bool:
        return self.code < 400

    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    def is_permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        """The reply as one line, the way logs and events show it: ``550 5.1.1 User unknown``."""
        parts = [str(self.code)]
        if self.enhanced is not None:
            parts.append(str(self.enhanced))
        if self.text:
            parts.append(self.text)
        return " ".join(parts)

    def to_bytes(self) -> bytes:
        """Serialize as a server would send it, with the enhanced code on every line."""
        lines = list(self.lines) or [""]
        prefix = f"{self.enhanced} " if self.enhanced is not None else ""
        out = []
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out.append(f"{self.code}{sep}{prefix}{line}".rstrip() + "\r\n")
        return "".join(out).encode("utf-8")

    @classmethod
    def build(cls, code: int, enhanced: str | None, *lines: str) -> Reply:
        """Convenience constructor: ``Reply.build(550, "5.7.1", "Relaying denied")``."""
        status = EnhancedStatus.parse(enhanced) if enhanced else None
        if enhanced and status is None:
            raise ValueError(f"not an enhanced status code: {enhanced!r}")
        return cls(code, tuple(lines), status)

    @classmethod
    def from_lines(cls, code: int, raw_lines: list[str]) -> Reply:
        """Build from the text parts of the reply lines as received (code stripped).

        The enhanced status is taken from the first line when the reply class
        matches (RFC 2034 §3); it is then removed from every line that repeats it.
        """
        enhanced: EnhancedStatus | None = None
        if raw_lines:
            head, _, _ = raw_lines[0].partition(" ")
            candidate = EnhancedStatus.parse(head)
            if candidate is not None and candidate.klass == code // 100:
                enhanced = candidate
        if enhanced is None:
            return cls(code, tuple(raw_lines))
        token = str(enhanced)
        cleaned = []
        for line in raw_lines:
            if line == token:
                cleaned.append("")
            elif line.startswith(token + " "):
                cleaned.append(line[len(token) + 1 :])
            else:
                cleaned.append(line)
        return cls(code, tuple(cleaned), enhanced)
