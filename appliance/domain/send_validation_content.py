"""SendGrid's rules for ``content`` and ``attachments`` of a mail/send body.

Part of :mod:`appliance.domain.send_validation`, split off to keep each module
small. Content blocks need a MIME type without parameters and a non-empty
value, text/plain first; attachments need base64 content and a filename, and
an inline attachment needs a content_id.
"""

from __future__ import annotations

import base64
import binascii

from appliance.domain import send_errors as m
from appliance.domain.send_errors import (
    BadShapeError,
    RuleChecker,
    json_array,
    json_object,
    json_string,
    shown,
)
from appliance.domain.send_request import Attachment, Content, ContentType, Disposition

_CONTENT_RANK = {ContentType.TEXT: 0, ContentType.AMP: 1, ContentType.HTML: 1}
_OTHER_CONTENT_RANK = 2


def _content_rank(type_: str) -> int:
    """text/plain first, then text/html and AMP (helpers put AMP before html), then any."""
    try:
        return _CONTENT_RANK[ContentType(type_.lower())]
    except ValueError:
        return _OTHER_CONTENT_RANK


class ContentChecker(RuleChecker):
    def content(self, raw: object, template_id: str | None) -> tuple[Content, ...]:
        items = json_array(raw)
        if not items:
            if template_id is None:
                self.error(m.CONTENT_REQUIRED, "content", "message.content")
            return ()
        content = [self.content_block(item, j) for j, item in enumerate(items)]
        ranks = [_content_rank(c.type) for c in content if c is not None]
        if ranks != sorted(ranks):
            self.error(m.CONTENT_ORDER, "content", "message.content.value")
        return tuple(c for c in content if c is not None)

    def content_block(self, raw: object, j: int) -> Content | None:
        item = json_object(raw)
        if item is None:
            raise BadShapeError
        type_ = json_string(item.get("type"))
        value = json_string(item.get("value"))
        ok = True
        for error in (
            m.CONTENT_TYPE_REQUIRED if type_ is None else None,
            m.CONTENT_TYPE_EMPTY if type_ == "" else None,
            m.CONTENT_TYPE_CRLF if type_ and any(c in type_ for c in ";\r\n") else None,
        ):
            if error is not None:
                self.error(error, f"content.{j}.type", "message.content.type")
                ok = False
        if value is None:
            self.error(m.CONTENT_VALUE_REQUIRED, f"content.{j}.value", "message.content.value")
        elif value == "":
            self.error(m.CONTENT_VALUE_EMPTY, f"content.{j}.value", "message.content.value")
        if not ok or not value or type_ is None:
            return None
        return Content(type_, value)

    def attachments(self, raw: object) -> tuple[Attachment, ...]:
        parsed = [self.attachment(item, j) for j, item in enumerate(json_array(raw) or [])]
        return tuple(a for a in parsed if a is not None)

    def attachment(self, raw: object, j: int) -> Attachment | None:
        item = json_object(raw)
        if item is None:
            raise BadShapeError
        path = f"attachments.{j}"
        errors_before = len(self.errors)
        content = self.attachment_content(item.get("content"), path)
        filename = item.get("filename")
        anchor = "message.attachments.filename"
        if filename is None or filename == "":
            self.error(m.ATTACHMENT_FILENAME_REQUIRED, f"{path}.filename", anchor)
        elif not isinstance(filename, str):
            self.error(m.ATTACHMENT_FILENAME_NOT_STRING, f"{path}.filename", anchor)
        elif "\r" in filename or "\n" in filename:
            self.error(m.ATTACHMENT_FILENAME_CRLF, f"{path}.filename", anchor)
        type_ = item.get("type")
        anchor = "message.attachments.type"
        if type_ is not None and (not isinstance(type_, str) or not type_):
            self.error(m.ATTACHMENT_TYPE_EMPTY, f"{path}.type", anchor)
        elif isinstance(type_, str) and any(c in type_ for c in ";\r\n"):
            self.error(m.ATTACHMENT_TYPE_CRLF, f"{path}.type", anchor)
        disposition = item.get("disposition", Disposition.ATTACHMENT.value)
        if disposition is None:
            disposition = Disposition.ATTACHMENT.value
        if disposition not in (Disposition.ATTACHMENT.value, Disposition.INLINE.value):
            message = m.ATTACHMENT_DISPOSITION.format(value=shown(disposition))
            self.error(message, f"{path}.disposition", "message.attachments.disposition")
            disposition = Disposition.ATTACHMENT.value
        content_id = self.content_id(item.get("content_id"), path, disposition)
        if len(self.errors) > errors_before or content is None:
            return None
        assert isinstance(filename, str)  # no error was recorded
        return Attachment(
            content=content,
            filename=filename,
            type=type_ if isinstance(type_, str) else None,
            disposition=Disposition(disposition),
            content_id=content_id,
        )

    def attachment_content(self, raw: object, path: str) -> bytes | None:
        anchor = "message.attachments.content"
        if not isinstance(raw, str) or not raw:
            self.error(m.ATTACHMENT_CONTENT_EMPTY, f"{path}.content", anchor)
            return None
        try:
            # Line breaks are allowed (MIME-style encoders wrap at 76), nothing else.
            return base64.b64decode(raw.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            self.error(m.ATTACHMENT_CONTENT_BASE64, f"{path}.content", anchor)
            return None

    def content_id(self, raw: object, path: str, disposition: object) -> str | None:
        field, anchor = f"{path}.content_id", "message.attachments.content_id"
        if raw is not None and not isinstance(raw, str):
            self.error(m.ATTACHMENT_CONTENT_ID_NOT_STRING.format(value=shown(raw)), field, anchor)
            return None
        if raw is not None and ("\r" in raw or "\n" in raw):
            self.error(m.ATTACHMENT_CONTENT_ID_CRLF, field, anchor)
        if disposition == Disposition.INLINE.value and not raw:
            self.error(m.ATTACHMENT_CONTENT_ID_REQUIRED, field, anchor)
        return raw or None
