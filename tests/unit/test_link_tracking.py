"""Click and open tracking in rendered mail, as the request's tracking_settings ask."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from appliance.domain.link_tracking import (
    TrackingLinks,
    add_open_pixel,
    track_html_links,
    track_text_links,
)
from appliance.domain.rendering import RenderTarget, render_message
from appliance.domain.send_validation import parse_send_request

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PIXEL = "https://t.example/t/o/TOKEN"


def tracked(url: str) -> str:
    return "https://t.example/t/c/" + quote(url, safe="")


LINKS = TrackingLinks(PIXEL, tracked)

HTML = (
    "<html><body>"
    '<a href="https://shop.example/a?x=1&amp;y=2">A</a> '
    "<A class=b HREF='http://shop.example/b'>B</A> "
    '<a href="mailto:help@shop.example">mail</a> '
    '<a href="#top">top</a> '
    '<a href="/relative">rel</a> '
    '<a clicktracking=off href="https://shop.example/private">P</a> '
    '<a name="anchor">no href</a>'
    '<a data-href="https://x.example/d" href="https://shop.example/c">C</a>'
    "</body></html>"
)


def test_html_links_are_rewritten_except_opt_outs_and_non_http() -> None:
    out = track_html_links(HTML, tracked)
    assert f'href="{tracked("https://shop.example/a?x=1&y=2")}"' in out
    assert f'<A class=b HREF="{tracked("http://shop.example/b")}">' in out
    assert f'data-href="https://x.example/d" href="{tracked("https://shop.example/c")}"' in out
    for kept in (
        'href="mailto:help@shop.example"',
        'href="#top"',
        'href="/relative"',
        '<a clicktracking=off href="https://shop.example/private">',
        '<a name="anchor">',
    ):
        assert kept in out


def test_text_links_keep_trailing_punctuation() -> None:
    out = track_text_links("See https://shop.example/a. Or (http://b.example/x), ok", tracked)
    assert out == (
        f"See {tracked('https://shop.example/a')}. Or ({tracked('http://b.example/x')}), ok"
    )


def test_open_pixel_goes_before_body_end_or_at_substitution_tag() -> None:
    assert add_open_pixel("<body><p>x</p></BODY>", PIXEL).endswith(
        'padding:0 !important" /></BODY>'
    )
    assert PIXEL in add_open_pixel("<p>x</p>", PIXEL)
    placed = add_open_pixel("<p>[pixel]</p><p>y</p></body>", PIXEL, "[pixel]")
    assert placed.startswith(f'<p><img src="{PIXEL}"') and placed.endswith("<p>y</p></body>")


def _render(tracking_settings: dict[str, Any] | None, links: TrackingLinks | None = LINKS) -> Any:
    body: dict[str, Any] = {
        "personalizations": [{"to": [{"email": "ana@example.org"}]}],
        "from": {"email": "news@shop.example"},
        "subject": "Hi",
        "content": [
            {"type": "text/plain", "value": "Go to https://shop.example/a now"},
            {"type": "text/html", "value": HTML},
        ],
    }
    if tracking_settings is not None:
        body["tracking_settings"] = tracking_settings
    request = parse_send_request(body, now=NOW)
    target = RenderTarget(
        "msg_01jab3xyzxyzxyzxyzxyzxyzxy", 0, "ana@example.org", NOW, None, None, links
    )
    parsed = email.message_from_bytes(
        render_message(request, target, None), policy=email.policy.default
    )
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return text, html


def test_rendering_tracks_only_what_the_request_enables() -> None:
    text, html = _render(None)
    assert "t.example" not in html and "t.example" not in text

    text, html = _render({"click_tracking": {"enable": True}, "open_tracking": {"enable": True}})
    assert tracked("https://shop.example/a?x=1&y=2") in html
    assert f'<img src="{PIXEL}"' in html and html.index(PIXEL) < html.lower().index("</body>")
    assert "https://shop.example/a now" in text  # enable_text not set

    text, html = _render({"click_tracking": {"enable": True, "enable_text": True}})
    assert tracked("https://shop.example/a") in text and PIXEL not in html

    text, html = _render({"open_tracking": {"enable": True}})
    assert PIXEL in html and "t.example/t/c/" not in html


def test_rendering_without_tracking_links_leaves_content_alone() -> None:
    _, html = _render({"click_tracking": {"enable": True}}, links=None)
    assert "t.example" not in html
