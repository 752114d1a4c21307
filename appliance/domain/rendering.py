"""Render one queued message to its final MIME bytes: pure, no I/O.

Inputs are the stored request (parsed again from its payload), which
personalization and recipient the message is for, the template version if
the request names one, and the names and links of this appliance. Output is
the RFC 5322 message before DKIM signing. Template errors surface as
``TemplateError`` saying which part, line and column, so the message can be
failed with that sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from appliance.domain.link_tracking import (
    TrackingLinks,
    add_open_pixel,
    track_html_links,
    track_text_links,
)
from appliance.domain.send_request import (
    ContentType,
    EmailAddress,
    SendRequest,
)
from appliance.domain.templating import (
    TemplatePart,
    apply_substitutions,
    render_template,
)
from appliance.protocols import mime

LEGACY_BODY_TAG = "<%body%>"
LEGACY_SUBJECT_TAG = "<%subject%>"


@dataclass(frozen=True, slots=True)
class TemplateSource:
    """The active version of the template a request names."""

    dynamic: bool
    subject: str
    html: str
    plain: str


@dataclass(frozen=True, slots=True)
class RenderTarget:
    message_id: str
    personalization: int
    recipient: str
    date: datetime
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    tracking: TrackingLinks | None = None  # used where the request's tracking_settings enable it


def _mailbox(address: EmailAddress) -> mime.Mailbox:
    return mime.Mailbox(address.email, address.name or None)


def _content(request: SendRequest, kind: ContentType) -> str | None:
    for part in request.content:
        if part.type.lower() == kind.value:
            return part.value
    return None


def _substitute(
    text: str | None, subs: Mapping[str, str], sections: Mapping[str, str]
) -> str | None:
    if text is None or not (subs or sections):
        return text
    return apply_substitutions(text, subs, sections)


def render_message(
    request: SendRequest, target: RenderTarget, template: TemplateSource | None
) -> bytes:
    index = target.personalization
    personalization = request.personalizations[index]
    subject = request.subject_for(index) or ""
    text = _content(request, ContentType.TEXT)
    html = _content(request, ContentType.HTML)
    amp = _content(request, ContentType.AMP)

    if template is not None and template.dynamic:
        data = personalization.dynamic_template_data or {}
        subject = render_template(template.subject, data, TemplatePart.SUBJECT) or subject
        html = render_template(template.html, data, TemplatePart.HTML) if template.html else html
        text = render_template(template.plain, data, TemplatePart.TEXT) if template.plain else text
    else:
        if template is not None:  # legacy: the request's content goes into the template
            subject = template.subject.replace(LEGACY_SUBJECT_TAG, subject) or subject
            if template.html:
                html = template.html.replace(LEGACY_BODY_TAG, html or "")
            if template.plain:
                text = template.plain.replace(LEGACY_BODY_TAG, text or "")
        subs = dict(personalization.substitutions)
        subject = _substitute(subject, subs, request.sections) or ""
        text = _substitute(text, subs, request.sections)
        html = _substitute(html, subs, request.sections)
        amp = _substitute(amp, subs, request.sections)

    footer = request.mail_settings.footer
    if footer is not None and footer.enable:
        if text is not None and footer.text:
            text = f"{text}\n\n{footer.text}"
        if html is not None and footer.html:
            html = _append_html(html, footer.html)
    if target.tracking is not None:
        text, html = _track(request, target.tracking, text, html)

    reply_to: tuple[mime.Mailbox, ...] = ()
    if request.reply_to_list:
        reply_to = tuple(_mailbox(a) for a in request.reply_to_list)
    elif request.reply_to is not None:
        reply_to = (_mailbox(request.reply_to),)
    sender = request.from_for(index)
    spec = mime.MessageSpec(
        from_=_mailbox(sender),
        to=tuple(_mailbox(a) for a in personalization.to),
        cc=tuple(_mailbox(a) for a in personalization.cc),
        reply_to=reply_to,
        subject=subject,
        postyard_message_id=target.message_id,
        message_id_domain=sender.email.rpartition("@")[2],
        date=target.date,
        text=text,
        html=html,
        amp_html=amp,
        attachments=tuple(
            mime.Attachment(
                filename=a.filename,
                content=a.content,
                type=a.type or "application/octet-stream",
                disposition=mime.Disposition(a.disposition.value),
                content_id=a.content_id,
            )
            for a in request.attachments
        ),
        headers=tuple(request.headers_for(index).items()),
        list_unsubscribe_urls=(target.unsubscribe_url,) if target.unsubscribe_url else (),
        list_unsubscribe_mailto=target.unsubscribe_mailto,
    )
    return mime.build_message(spec)


def _append_html(html: str, footer: str) -> str:
    lowered = html.lower()
    at = lowered.rfind("</body>")
    return f"{html[:at]}{footer}{html[at:]}" if at != -1 else f"{html}{footer}"


def _track(
    request: SendRequest, links: TrackingLinks, text: str | None, html: str | None
) -> tuple[str | None, str | None]:
    """Click and open tracking as the request's tracking_settings ask (after the footer)."""
    settings = request.tracking_settings
    click = settings.click_tracking
    if click is not None and click.enable:
        if html is not None:
            html = track_html_links(html, links.click_url)
        if text is not None and click.enable_text:
            text = track_text_links(text, links.click_url)
    opened = settings.open_tracking
    if opened is not None and opened.enable and html is not None:
        html = add_open_pixel(html, links.open_url, opened.substitution_tag)
    return text, html
