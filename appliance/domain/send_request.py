"""A validated SendGrid v3 ``POST /v3/mail/send`` request, as typed, frozen records.

Built only by :func:`appliance.domain.send_validation.parse_send_request`, which
checks a decoded JSON body by SendGrid's rules; everything here may assume the
rules hold (addresses are valid and normalized, limits are kept).

Mappings are read-only views (``MappingProxyType``); ``dynamic_template_data``
is read-only at its top level only (its values are the client's JSON).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import NamedTuple

MAX_REQUEST_BYTES = 30 * 1024 * 1024
"""Largest request body (SendGrid: "total email size incl. attachments < 30 MB";
the HTTP layer answers 413 ``content too large`` past it)."""
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000  # to + cc + bcc over all personalizations
MAX_REPLY_TO_LIST = 1000
MAX_CATEGORIES = 10
MAX_CATEGORY_LENGTH = 255
MAX_CUSTOM_ARGS_BYTES = 10_000  # per personalization, global and own merged
MAX_SUBSTITUTIONS = 10_000
MAX_GROUPS_TO_DISPLAY = 25
IP_POOL_NAME_LENGTH = range(2, 65)
MAX_SCHEDULE_AHEAD_SECONDS = 72 * 3600
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)
"""Headers a client may not set (lower case), per SendGrid's schema."""

EMPTY_STR_MAP: Mapping[str, str] = MappingProxyType({})


class RecipientKind(StrEnum):
    TO = "to"
    CC = "cc"
    BCC = "bcc"


class Disposition(StrEnum):
    ATTACHMENT = "attachment"
    INLINE = "inline"


class ContentType(StrEnum):
    """The content types SendGrid orders; any other MIME type is allowed after them."""

    TEXT = "text/plain"
    AMP = "text/x-amp-html"
    HTML = "text/html"


class TemplateKind(Enum):
    NONE = "none"
    LEGACY = "legacy"  # substitutions
    DYNAMIC = "dynamic"  # "d-…": Handlebars with dynamic_template_data


@dataclass(frozen=True, slots=True)
class EmailAddress:
    """``{"email", "name"}``; ``email`` is in normal form (see email_address)."""

    email: str
    name: str | None = None


class Recipient(NamedTuple):
    personalization_index: int
    kind: RecipientKind
    address: EmailAddress


@dataclass(frozen=True, slots=True)
class Personalization:
    to: tuple[EmailAddress, ...]
    cc: tuple[EmailAddress, ...] = ()
    bcc: tuple[EmailAddress, ...] = ()
    from_address: EmailAddress | None = None
    subject: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: EMPTY_STR_MAP)
    substitutions: Mapping[str, str] = field(default_factory=lambda: EMPTY_STR_MAP)
    dynamic_template_data: Mapping[str, object] | None = None
    custom_args: Mapping[str, str] = field(default_factory=lambda: EMPTY_STR_MAP)
    send_at: datetime | None = None  # aware, UTC


@dataclass(frozen=True, slots=True)
class Content:
    type: str  # as sent; compare with ContentType case-insensitively
    value: str


@dataclass(frozen=True, slots=True)
class Attachment:
    content: bytes  # decoded from the base64 the client sent
    filename: str
    type: str | None = None
    disposition: Disposition = Disposition.ATTACHMENT
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class Asm:
    group_id: int
    groups_to_display: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Footer:
    enable: bool = False
    text: str | None = None
    html: str | None = None


@dataclass(frozen=True, slots=True)
class BccSetting:
    """Accepted for compatibility (helpers send it); not acted on."""

    enable: bool = False
    email: str | None = None


@dataclass(frozen=True, slots=True)
class SpamCheck:
    """Accepted for compatibility (helpers send it); not acted on."""

    enable: bool = False
    threshold: int | None = None
    post_to_url: str | None = None


@dataclass(frozen=True, slots=True)
class MailSettings:
    sandbox_mode: bool = False
    bypass_list_management: bool = False
    bypass_spam_management: bool = False
    bypass_bounce_management: bool = False
    bypass_unsubscribe_management: bool = False
    footer: Footer | None = None
    bcc: BccSetting | None = None
    spam_check: SpamCheck | None = None


@dataclass(frozen=True, slots=True)
class ClickTracking:
    enable: bool = False
    enable_text: bool = False


@dataclass(frozen=True, slots=True)
class OpenTracking:
    enable: bool = False
    substitution_tag: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionTracking:
    enable: bool = False
    text: str | None = None
    html: str | None = None
    substitution_tag: str | None = None


@dataclass(frozen=True, slots=True)
class Ganalytics:
    enable: bool = False
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    utm_campaign: str | None = None


@dataclass(frozen=True, slots=True)
class TrackingSettings:
    """Stored with the request; the tracking service reads it later."""

    click_tracking: ClickTracking | None = None
    open_tracking: OpenTracking | None = None
    subscription_tracking: SubscriptionTracking | None = None
    ganalytics: Ganalytics | None = None


@dataclass(frozen=True, slots=True)
class SendRequest:
    personalizations: tuple[Personalization, ...]
    from_address: EmailAddress
    reply_to: EmailAddress | None = None
    reply_to_list: tuple[EmailAddress, ...] = ()
    subject: str | None = None
    content: tuple[Content, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    template_id: str | None = None
    sections: Mapping[str, str] = field(default_factory=lambda: EMPTY_STR_MAP)
    headers: Mapping[str, str] = field(default_factory=lambda: EMPTY_STR_MAP)
    categories: tuple[str, ...] = ()
    custom_args: Mapping[str, str] = field(default_factory=lambda: EMPTY_STR_MAP)
    send_at: datetime | None = None  # aware, UTC
    batch_id: str | None = None
    asm: Asm | None = None
    ip_pool_name: str | None = None
    mail_settings: MailSettings = field(default_factory=MailSettings)
    tracking_settings: TrackingSettings = field(default_factory=TrackingSettings)

    @property
    def template_kind(self) -> TemplateKind:
        if not self.template_id:
            return TemplateKind.NONE
        return TemplateKind.DYNAMIC if self.template_id.startswith("d-") else TemplateKind.LEGACY

    @property
    def is_sandbox(self) -> bool:
        """Valid and not to be sent: SendGrid answers 200 instead of 202."""
        return self.mail_settings.sandbox_mode

    def recipients(self) -> Iterator[Recipient]:
        """Every message recipient: personalization by personalization, to, cc, bcc."""
        for index, p in enumerate(self.personalizations):
            for kind, addresses in (
                (RecipientKind.TO, p.to),
                (RecipientKind.CC, p.cc),
                (RecipientKind.BCC, p.bcc),
            ):
                for address in addresses:
                    yield Recipient(index, kind, address)

    # What applies to one personalization: its own value, else the request's.

    def subject_for(self, index: int) -> str | None:
        return self.personalizations[index].subject or self.subject

    def from_for(self, index: int) -> EmailAddress:
        return self.personalizations[index].from_address or self.from_address

    def send_at_for(self, index: int) -> datetime | None:
        return self.personalizations[index].send_at or self.send_at

    def headers_for(self, index: int) -> Mapping[str, str]:
        """Request headers overridden by the personalization's, names compared case-blind."""
        own = self.personalizations[index].headers
        overridden = {name.lower() for name in own}
        kept = {k: v for k, v in self.headers.items() if k.lower() not in overridden}
        return MappingProxyType({**kept, **own})

    def custom_args_for(self, index: int) -> Mapping[str, str]:
        return MappingProxyType({**self.custom_args, **self.personalizations[index].custom_args})
