"""SendGrid's rules for a ``POST /v3/mail/send`` body: a JSON value in, a SendRequest out.

Written by hand rather than with pydantic: every rule must answer with
SendGrid's own message, dotted ``field`` and help URL, all errors of a body
at once, and SendGrid's distinction between a body of the wrong JSON shape
(one ``Bad Request`` entry, field and help null) and a well-shaped body that
breaks rules. With pydantic each of those would be a translation from its
error types back to SendGrid's table, and its lax coercions (``"true"`` for a
boolean) would have to be turned off field by field.

Order of checks follows the body as the official helpers write it: from,
personalizations, reply_to, subject, content, attachments, then the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from appliance.domain import send_errors as m
from appliance.domain.email_address import AddressProblem, InvalidAddressError, parse_address
from appliance.domain.send_errors import (
    BadShapeError,
    FieldError,
    SendValidationError,
    breaks_header_line,
    json_array,
    json_object,
    json_string,
    shown,
)
from appliance.domain.send_request import (
    EMPTY_STR_MAP,
    IP_POOL_NAME_LENGTH,
    MAX_CATEGORIES,
    MAX_CATEGORY_LENGTH,
    MAX_CUSTOM_ARGS_BYTES,
    MAX_GROUPS_TO_DISPLAY,
    MAX_PERSONALIZATIONS,
    MAX_RECIPIENTS,
    MAX_REPLY_TO_LIST,
    MAX_SCHEDULE_AHEAD_SECONDS,
    MAX_SUBSTITUTIONS,
    RESERVED_HEADERS,
    Asm,
    EmailAddress,
    Personalization,
    SendRequest,
)
from appliance.domain.send_validation_content import ContentChecker
from appliance.domain.send_validation_settings import SettingsChecker


def parse_send_request(body: object, *, now: datetime) -> SendRequest:
    """Check a decoded JSON body by SendGrid's rules.

    ``now`` (timezone-aware) is the time ``send_at`` is judged against. Raises
    SendValidationError with every broken rule; returns the typed request.
    """
    if now.tzinfo is None:
        raise ValueError("parse_send_request needs a timezone-aware now")
    checker = _Checker(now)
    try:
        request = checker.request(body)
    except BadShapeError:
        raise SendValidationError([FieldError(m.BAD_REQUEST, None, None)]) from None
    if checker.errors or request is None:
        raise SendValidationError(checker.errors)
    return request


@dataclass(frozen=True, slots=True)
class _AddressRole:
    """How SendGrid words the errors of one kind of address object."""

    anchor: str
    missing: str
    invalid: str
    too_long: str
    role: str  # as the name's line-break message says it


_ROLES = {
    "to": _AddressRole(
        "message.personalizations.to",
        m.TO_EMAIL_REQUIRED,
        m.RECIPIENT_INVALID,
        m.EMAIL_TOO_LONG.format(label="To"),
        "to",
    ),
    "cc": _AddressRole(
        "message.personalizations.cc",
        m.CC_EMAIL_REQUIRED,
        m.RECIPIENT_INVALID,
        m.EMAIL_TOO_LONG.format(label="CC"),
        "cc",
    ),
    "bcc": _AddressRole(
        "message.personalizations.bcc",
        m.BCC_EMAIL_REQUIRED,
        m.RECIPIENT_INVALID,
        m.EMAIL_TOO_LONG.format(label="BCC"),
        "bcc",
    ),
    "from": _AddressRole(
        "message.from",
        m.FROM_REQUIRED,
        m.FROM_INVALID,
        m.EMAIL_TOO_LONG.format(label="From"),
        "from",
    ),
    "reply_to": _AddressRole(
        "message.reply_to",
        m.REPLY_TO_EMAIL_REQUIRED,
        m.REPLY_TO_INVALID,
        m.EMAIL_TOO_LONG.format(label="Reply-To"),
        "reply_to",
    ),
    "reply_to_list": _AddressRole(
        "message.reply_to_list",
        m.REPLY_TO_LIST_EMAIL_REQUIRED,
        m.REPLY_TO_LIST_INVALID,
        m.REPLY_TO_LIST_TOO_LONG,
        "reply_to_list",
    ),
}


@dataclass(frozen=True, slots=True)
class _HeaderRules:
    anchor: str
    not_string: str
    bad_key: str
    reserved: str


_TOP_HEADERS = _HeaderRules("message.headers", m.HEADER_NOT_STRING, m.HEADER_KEY, m.HEADER_RESERVED)
_PERSONALIZATION_HEADERS = _HeaderRules(
    "message.personalizations.headers",
    m.PERSONALIZATION_HEADER_NOT_STRING,
    m.PERSONALIZATION_HEADER_KEY,
    m.PERSONALIZATION_HEADER_RESERVED,
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_size(mapping: Mapping[str, str]) -> int:
    return len(json.dumps(dict(mapping), ensure_ascii=False, separators=(",", ":")).encode())


class _Checker(SettingsChecker, ContentChecker):
    def __init__(self, now: datetime) -> None:
        super().__init__()
        self.now = now
        self.recipient_count = 0

    def request(self, raw: object) -> SendRequest | None:
        body = json_object(raw)
        if body is None:
            raise BadShapeError
        template_id = self.template_id(body.get("template_id"))
        dynamic = template_id is not None and template_id.startswith("d-")
        from_address = self.from_address(body.get("from"))
        personalizations = self.personalizations(body.get("personalizations"), dynamic)
        reply_to, reply_to_list = self.reply_to(body.get("reply_to"), body.get("reply_to_list"))
        subject = self.subject(body, template_id, personalizations)
        content = self.content(body.get("content"), template_id)
        attachments = self.attachments(body.get("attachments"))
        sections = self.string_map(body.get("sections"), "sections", m.SECTIONS_NOT_STRINGS)
        headers = self.headers(body.get("headers"), "headers", _TOP_HEADERS)
        categories = self.categories(body.get("categories"))
        custom_args = self.custom_args(body.get("custom_args"), "custom_args")
        self.custom_args_size(custom_args, personalizations)
        send_at = self.send_at(body.get("send_at"), "send_at", "message.send_at")
        batch_id = self.batch_id(body.get("batch_id"))
        asm = self.asm(body.get("asm"))
        ip_pool_name = self.ip_pool_name(body.get("ip_pool_name"))
        mail_settings = self.mail_settings(body.get("mail_settings"))
        tracking_settings = self.tracking_settings(body.get("tracking_settings"))
        if self.errors or from_address is None or personalizations is None:
            return None
        return SendRequest(
            personalizations=personalizations,
            from_address=from_address,
            reply_to=reply_to,
            reply_to_list=reply_to_list,
            subject=subject,
            content=content,
            attachments=attachments,
            template_id=template_id,
            sections=sections,
            headers=headers,
            categories=categories,
            custom_args=custom_args,
            send_at=send_at,
            batch_id=batch_id,
            asm=asm,
            ip_pool_name=ip_pool_name,
            mail_settings=mail_settings,
            tracking_settings=tracking_settings,
        )

    # addresses

    def address(self, raw: object, path: str, role: _AddressRole) -> EmailAddress | None:
        item = json_object(raw)
        email = json_string(item.get("email")) if item is not None else None
        name = json_string(item.get("name")) if item is not None else None
        if not email:
            self.error(role.missing, f"{path}.email", role.anchor)
            return None
        try:
            address = parse_address(email)
        except InvalidAddressError as exc:
            too_long = exc.problem is AddressProblem.TOO_LONG
            self.error(role.too_long if too_long else role.invalid, f"{path}.email", role.anchor)
            return None
        if name and breaks_header_line(name):
            self.error(m.NAME_LINE_BREAK.format(role=role.role), f"{path}.name", role.anchor)
            return None
        return EmailAddress(str(address), name or None)

    def from_address(self, raw: object) -> EmailAddress | None:
        return self.address(raw, "from", _ROLES["from"])

    def reply_to(
        self, raw: object, raw_list: object
    ) -> tuple[EmailAddress | None, tuple[EmailAddress, ...]]:
        reply_to = None if raw is None else self.address(raw, "reply_to", _ROLES["reply_to"])
        items = json_array(raw_list) or []
        if raw is not None and items:
            self.error(m.REPLY_TO_EXCLUSIVE, "reply_to_list", "message.reply_to_list")
        if len(items) > MAX_REPLY_TO_LIST:
            self.error(m.REPLY_TO_LIST_TOO_MANY, "reply_to_list", "message.reply_to_list")
            return reply_to, ()
        reply_to_list: list[EmailAddress] = []
        seen: set[str] = set()
        for j, item in enumerate(items):
            address = self.address(item, f"reply_to_list.{j}", _ROLES["reply_to_list"])
            if address is None:
                continue
            key = address.email.casefold()
            if key in seen:
                message = m.REPLY_TO_LIST_DUPLICATE.format(email=address.email)
                self.error(message, f"reply_to_list.{j}.email", "message.reply_to_list")
            seen.add(key)
            reply_to_list.append(address)
        return reply_to, tuple(reply_to_list)

    # personalizations

    def personalizations(self, raw: object, dynamic: bool) -> tuple[Personalization, ...] | None:
        items = json_array(raw)
        if items is None:
            self.error(m.PERSONALIZATIONS_REQUIRED, "personalizations", "-Personalizations-Errors")
            return None
        if not items:
            self.error(m.PERSONALIZATIONS_EMPTY, "personalizations", "message.personalizations")
            return None
        if len(items) > MAX_PERSONALIZATIONS:
            message = m.PERSONALIZATIONS_TOO_MANY.format(n=len(items))
            self.error(message, "personalizations", "message.personalizations")
            return None
        parsed = [self.personalization(item, i, dynamic) for i, item in enumerate(items)]
        if self.recipient_count > MAX_RECIPIENTS:
            self.error(m.RECIPIENTS_TOO_MANY, "personalizations", "message.personalizations")
        return tuple(p for p in parsed if p is not None)

    def personalization(self, raw: object, i: int, dynamic: bool) -> Personalization | None:
        item = json_object(raw)
        if item is None:
            raise BadShapeError
        path = f"personalizations.{i}"
        to_items = json_array(item.get("to"))
        if not to_items:
            self.error(m.TO_REQUIRED, f"{path}.to", "message.personalizations.to")
        recipients = {
            kind: self.recipient_list(item.get(kind), f"{path}.{kind}", _ROLES[kind])
            for kind in ("to", "cc", "bcc")
        }
        self.unique_recipients(recipients, path)
        from_raw = item.get("from")
        from_address = (
            None if from_raw is None else self.address(from_raw, f"{path}.from", _ROLES["from"])
        )
        subject = json_string(item.get("subject"))
        if subject == "":
            self.error(m.SUBJECT_EMPTY, f"{path}.subject", "message.personalizations.subject")
        elif subject is not None and breaks_header_line(subject):
            anchor = "message.personalizations.subject"
            self.error(m.SUBJECT_LINE_BREAK, f"{path}.subject", anchor)
        headers = self.headers(item.get("headers"), f"{path}.headers", _PERSONALIZATION_HEADERS)
        substitutions = self.substitutions(item.get("substitutions"), path, dynamic)
        dynamic_template_data = json_object(item.get("dynamic_template_data"))
        custom_args = self.custom_args(item.get("custom_args"), f"{path}.custom_args")
        send_at = self.send_at(
            item.get("send_at"), f"{path}.send_at", "message.personalizations.send_at"
        )
        return Personalization(
            to=recipients["to"],
            cc=recipients["cc"],
            bcc=recipients["bcc"],
            from_address=from_address,
            subject=subject or None,
            headers=headers,
            substitutions=substitutions,
            dynamic_template_data=(
                None if dynamic_template_data is None else MappingProxyType(dynamic_template_data)
            ),
            custom_args=custom_args,
            send_at=send_at,
        )

    def recipient_list(
        self, raw: object, path: str, role: _AddressRole
    ) -> tuple[EmailAddress, ...]:
        items = json_array(raw) or []
        self.recipient_count += len(items)
        addresses = (self.address(item, f"{path}.{j}", role) for j, item in enumerate(items))
        return tuple(a for a in addresses if a is not None)

    def unique_recipients(
        self, recipients: Mapping[str, tuple[EmailAddress, ...]], path: str
    ) -> None:
        seen: set[str] = set()
        for kind, addresses in recipients.items():
            for address in addresses:
                key = address.email.casefold()
                if key in seen:
                    message = m.RECIPIENT_DUPLICATE.format(
                        email=address.email, field=f"{path}.{kind}"
                    )
                    self.error(message, path, "message.personalizations")
                    return
                seen.add(key)

    def substitutions(self, raw: object, path: str, dynamic: bool) -> Mapping[str, str]:
        if raw is None:
            return EMPTY_STR_MAP
        field = f"{path}.substitutions"
        anchor = "message.personalizations.substitutions"
        if dynamic:
            self.error(m.SUBSTITUTIONS_WITH_DYNAMIC, field, anchor)
            return EMPTY_STR_MAP
        values = self.string_map(raw, field, m.SUBSTITUTIONS_NOT_STRINGS, anchor)
        if len(values) > MAX_SUBSTITUTIONS:
            self.error(m.SUBSTITUTIONS_TOO_MANY, field, anchor)
        return values

    # subject

    def subject(
        self,
        body: Mapping[str, object],
        template_id: str | None,
        personalizations: tuple[Personalization, ...] | None,
    ) -> str | None:
        subject = json_string(body.get("subject"))
        if subject == "":
            self.error(m.SUBJECT_EMPTY, "subject", "message.subject")
        elif subject is not None and breaks_header_line(subject):
            self.error(m.SUBJECT_LINE_BREAK, "subject", "message.subject")
        elif (
            subject is None
            and template_id is None
            and personalizations is not None
            and not all(p.subject for p in personalizations)
        ):
            self.error(m.SUBJECT_REQUIRED, "subject", "message.subject")
        return subject or None

    # the rest of the top level

    def template_id(self, raw: object) -> str | None:
        if raw is not None and not isinstance(raw, str):
            message = m.TEMPLATE_ID_NOT_STRING.format(value=shown(raw))
            self.error(message, "template_id", "message.template_id")
            return None
        return raw or None

    def string_map(
        self, raw: object, field: str, message: str, anchor: str | None = None
    ) -> Mapping[str, str]:
        if raw is None:
            return EMPTY_STR_MAP
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            self.error(message, field, anchor or f"message.{field}")
            return EMPTY_STR_MAP
        return MappingProxyType(dict(raw))

    def headers(self, raw: object, field: str, rules: _HeaderRules) -> Mapping[str, str]:
        headers = json_object(raw)
        if headers is None:
            return EMPTY_STR_MAP
        errors_before = len(self.errors)
        if not all(isinstance(v, str) for v in headers.values()):
            self.error(rules.not_string, field, rules.anchor)
        if not all(k and all(33 <= ord(c) <= 126 and c != ":" for c in k) for k in headers):
            self.error(rules.bad_key, field, rules.anchor)
        if any(k.lower() in RESERVED_HEADERS for k in headers):
            self.error(rules.reserved, field, rules.anchor)
        for key, value in headers.items():
            if isinstance(value, str) and breaks_header_line(value):
                self.error(m.HEADER_VALUE_LINE_BREAK, f"{field}.{key}", rules.anchor)
        if len(self.errors) > errors_before:
            return EMPTY_STR_MAP
        return MappingProxyType({k: str(v) for k, v in headers.items()})

    def categories(self, raw: object) -> tuple[str, ...]:
        if raw is None:
            return ()
        field, anchor = "categories", "message.categories"
        if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
            self.error(m.CATEGORIES_NOT_STRINGS, field, anchor)
            return ()
        categories: list[str] = raw
        if len(categories) > MAX_CATEGORIES:
            message = m.CATEGORIES_TOO_MANY.format(n=len(categories))
            self.error(message, field, anchor)
        seen: set[str] = set()
        for category in categories:
            if len(category) > MAX_CATEGORY_LENGTH:
                self.error(m.CATEGORY_TOO_LONG.format(value=category), field, anchor)
            if not category.isascii():
                self.error(m.CATEGORY_NON_ASCII, field, anchor)
            if category in seen:
                self.error(m.CATEGORY_DUPLICATE.format(value=category), field, anchor)
            seen.add(category)
        return tuple(categories)

    def custom_args(self, raw: object, field: str) -> Mapping[str, str]:
        anchor = "message.personalizations.custom_args"
        if raw == {}:
            self.error(m.CUSTOM_ARGS_EMPTY, field, anchor)
            return EMPTY_STR_MAP
        return self.string_map(json_object(raw), field, m.CUSTOM_ARGS_NOT_STRINGS, anchor)

    def custom_args_size(
        self, custom_args: Mapping[str, str], personalizations: tuple[Personalization, ...] | None
    ) -> None:
        anchor = "message.personalizations.custom_args"
        if _json_size(custom_args) > MAX_CUSTOM_ARGS_BYTES:
            self.error(m.CUSTOM_ARGS_TOO_BIG, "custom_args", anchor)
            return
        for i, p in enumerate(personalizations or ()):
            if (
                p.custom_args
                and _json_size({**custom_args, **p.custom_args}) > MAX_CUSTOM_ARGS_BYTES
            ):
                self.error(m.CUSTOM_ARGS_TOO_BIG, f"personalizations.{i}.custom_args", anchor)

    def send_at(self, raw: object, field: str, anchor: str) -> datetime | None:
        if raw is None:
            return None
        if not isinstance(raw, int) or isinstance(raw, bool):
            self.error(m.SEND_AT_NOT_INTEGER, field, anchor)
            return None
        if raw - self.now.timestamp() > MAX_SCHEDULE_AHEAD_SECONDS:
            self.error(m.SEND_AT_TOO_FAR, field, anchor)
            return None
        try:
            return datetime.fromtimestamp(raw, UTC)
        except (OverflowError, OSError, ValueError):  # before year 1: "in the past"
            return datetime.min.replace(tzinfo=UTC)

    def batch_id(self, raw: object) -> str | None:
        if raw is not None and not isinstance(raw, str):
            self.error(m.BATCH_ID_NOT_STRING, "batch_id", "message.batch_id")
            return None
        return raw or None

    def asm(self, raw: object) -> Asm | None:
        asm = json_object(raw)
        if asm is None:
            return None
        group_id = asm.get("group_id")
        if not _is_int(group_id):
            self.error(m.ASM_GROUP_ID, "asm.group_id", "message.asm.group_id")
        groups = asm.get("groups_to_display")
        field, anchor = "asm.groups_to_display", "message.asm.groups_to_display"
        if groups is None:
            groups = []
        if not isinstance(groups, list) or not all(_is_int(g) for g in groups):
            self.error(m.ASM_GROUPS_TO_DISPLAY, field, anchor)
            return None
        if len(groups) > MAX_GROUPS_TO_DISPLAY:
            self.error(m.ASM_GROUPS_TOO_MANY, field, anchor)
        if not isinstance(group_id, int):
            return None
        return Asm(group_id, tuple(int(g) for g in groups if isinstance(g, int)))

    def ip_pool_name(self, raw: object) -> str | None:
        if raw is None:
            return None
        if not isinstance(raw, str):
            self.error(m.IP_POOL_NOT_STRING, "ip_pool_name", "message.ip_pool_name")
            return None
        if len(raw) not in IP_POOL_NAME_LENGTH:
            message = m.IP_POOL_INVALID.format(value=raw)
            self.error(message, "ip_pool_name", "message.ip_pool_name")
        return raw
