"""Click and open tracking in rendered content: pure string rewriting.

As SendGrid does: every ``<a href>`` with an absolute http(s) URL goes
through the click redirect, except anchors marked ``clicktracking=off``;
``mailto:``, ``#fragment``, relative and other schemes stay as they are. With
``enable_text`` the bare http(s) URLs of the plain-text part are rewritten
too. The open pixel is a 1×1 image put where ``substitution_tag`` stands, or
else just before ``</body>`` (at the end when there is none).
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from dataclasses import dataclass

from appliance.domain.tracking_tokens import is_trackable_url


@dataclass(frozen=True, slots=True)
class TrackingLinks:
    """This message's tracking URLs (made by the composer, which holds the key)."""

    open_url: str
    click_url: Callable[[str], str]  # original URL -> tracked URL


_ANCHOR_RE = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF_RE = re.compile(
    r"""((?<![\w-])href\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE
)
_OPT_OUT_RE = re.compile(r"""(?<![\w-])clicktracking\s*=\s*["']?off\b""", re.IGNORECASE)
_TEXT_URL_RE = re.compile(r"""https?://[^\s<>"']+""", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'"


def track_html_links(html: str, click_url: Callable[[str], str]) -> str:
    """``html`` with each trackable anchor's href replaced by its tracked URL."""

    def anchor(match: re.Match[str]) -> str:
        tag = match.group(0)
        if _OPT_OUT_RE.search(tag):
            return tag
        href = _HREF_RE.search(tag)
        if href is None:
            return tag
        raw = next(g for g in href.group(2, 3, 4) if g is not None)
        url = html_lib.unescape(raw).strip()
        if not is_trackable_url(url):
            return tag
        tracked = html_lib.escape(click_url(url), quote=True)
        return f'{tag[: href.start()]}{href.group(1)}"{tracked}"{tag[href.end() :]}'

    return _ANCHOR_RE.sub(anchor, html)


def track_text_links(text: str, click_url: Callable[[str], str]) -> str:
    """``text`` with each bare http(s) URL replaced by its tracked URL."""

    def link(match: re.Match[str]) -> str:
        found = match.group(0)
        url = found.rstrip(_TRAILING)
        tail = found[len(url) :]
        return click_url(url) + tail if is_trackable_url(url) else found

    return _TEXT_URL_RE.sub(link, text)


def open_pixel(url: str) -> str:
    src = html_lib.escape(url, quote=True)
    return (
        f'<img src="{src}" alt="" width="1" height="1" border="0" '
        'style="height:1px !important;width:1px !important;border-width:0 !important;'
        'margin:0 !important;padding:0 !important" />'
    )


def add_open_pixel(html: str, url: str, substitution_tag: str | None = None) -> str:
    pixel = open_pixel(url)
    if substitution_tag and substitution_tag in html:
        return html.replace(substitution_tag, pixel)
    at = html.lower().rfind("</body>")
    return f"{html[:at]}{pixel}{html[at:]}" if at != -1 else f"{html}{pixel}"
