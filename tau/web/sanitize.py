"""A received message's HTML made safe to show: sanitised here, shown in a sandboxed frame.

Anyone can send mail, so its HTML is hostile until proven otherwise. Two independent walls:

1. ``nh3`` (ammonia's allow-list HTML parser) keeps only formatting tags and attributes: no
   ``<script>``, ``<style>``, ``<iframe>``, ``<form>``, no ``on*=`` handlers, no ``javascript:``
   URLs. Links open in a new tab with ``rel=noopener noreferrer``.
2. The document is served with its own Content-Security-Policy: no script source at all,
   ``sandbox`` (an opaque origin: nothing it does reaches tau's cookies or pages), and images
   only from ``data:`` unless the reader asked for remote images. Remote images are tracking
   pixels first; without consent their ``src`` is dropped here and the policy would block them
   anyway (CSS ``url()`` included).
"""

from __future__ import annotations

import re

import nh3

EXTRA_TAGS = {"font", "center", "span", "div", "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption",
              "colgroup", "col", "img", "hr", "br", "u", "s", "small", "big", "sub", "sup"}
FORMAT_ATTRIBUTES = {"style", "align", "valign", "width", "height", "bgcolor", "color", "border", "cellpadding",
                     "cellspacing", "colspan", "rowspan", "face", "size", "dir", "lang", "title"}
_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"url\s*\(|image-set\s*\(|@import|expression\s*\(", re.IGNORECASE)
BASE_STYLE = ("body{margin:0;padding:12px;font:15px/1.5 system-ui,sans-serif;color:#111;background:#fff;"
              "overflow-wrap:anywhere}img{max-width:100%;height:auto}table{max-width:100%}"
              "pre{white-space:pre-wrap}")


def _policy(remote_images: bool) -> str:
    images = "data: https: http:" if remote_images else "data:"
    return ("default-src 'none'; style-src 'unsafe-inline'; font-src data:; "
            f"img-src {images}; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; "
            "sandbox allow-popups allow-popups-to-escape-sandbox")


def clean(html: str, remote_images: bool = False) -> str:
    """The message's HTML with only inert formatting left (and remote images only if asked)."""
    attributes: dict[str, set[str]] = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
    for tag in set(nh3.ALLOWED_TAGS) | EXTRA_TAGS:
        attributes.setdefault(tag, set()).update(FORMAT_ATTRIBUTES)
    attributes["img"].update({"src", "alt"})
    attributes["a"].discard("target")

    def keep(tag: str, attr: str, value: str) -> str | None:
        if attr == "src" and not remote_images and _REMOTE.match(value):
            return None
        if attr == "href" and value.strip().lower().startswith("data:"):
            return None
        if attr == "style" and not remote_images and _CSS_URL.search(value):
            return None
        return value

    return str(nh3.clean(html, tags=set(nh3.ALLOWED_TAGS) | EXTRA_TAGS, attributes=attributes,
                         attribute_filter=keep, url_schemes={"http", "https", "mailto", "data", "cid"},
                         link_rel="noopener noreferrer nofollow", strip_comments=True,
                         set_tag_attribute_values={"a": {"target": "_blank"}}))


def document(html: str, remote_images: bool = False) -> tuple[bytes, dict[str, str]]:
    """A whole page for the reading frame and the headers that fence it in."""
    body = clean(html, remote_images)
    page = ("<!doctype html><html><head><meta charset=utf-8><meta name=color-scheme content=light>"
            f"<style>{BASE_STYLE}</style></head><body>{body}</body></html>")
    return page.encode("utf-8"), {"Content-Security-Policy": _policy(remote_images), "Cache-Control": "no-store",
                                  "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
