"""The headers every response carrying user content gets (one place, used by every download path).

Uploaded bytes must never run on tau's origin: an ``evil.html`` or ``evil.svg`` served inline
would run its script next to ``/admin``. So user content is

* ``Content-Disposition: attachment`` unless its type is on a short inline allow-list (raster
  images, PDF, plain text), and then its ``Content-Type`` is exactly that safe type;
* ``X-Content-Type-Options: nosniff``, so no browser guesses HTML or script from the bytes;
* ``Content-Security-Policy: default-src 'none'; sandbox``: even if rendered it gets an opaque
  origin, no script, no plugins, no forms, no subresources.

An attachment keeps its declared type only when that type is inert in every loading context
(``<script>``, ``<link rel=stylesheet>``, workers, ``<iframe>``, SVG ``<use>``, XSLT): the passive
allow-list below. Anything else is sent as ``application/octet-stream``, which ``nosniff`` makes
useless as script or style even from the same origin.
"""

from __future__ import annotations

import re

from tau.http.disposition import content_disposition

SANDBOX_CSP = "default-src 'none'; sandbox"
OCTET = "application/octet-stream"
#: shown in the browser (with the type forced to exactly this)
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"})
#: kept as declared on an attachment (never executed or styled by a browser)
PASSIVE_TYPES = INLINE_TYPES | frozenset({
    "text/calendar", "text/vcard", "text/x-vcard", "text/directory", "text/csv", "text/tab-separated-values",
    "text/markdown", "text/x-markdown", "application/zip", "application/gzip", "application/x-gzip",
    "application/x-tar", "application/x-bzip2", "application/x-xz", "application/x-7z-compressed",
    "application/x-rar-compressed", "application/vnd.rar", "application/msword", "application/rtf",
    "application/epub+zip", "application/pgp-encrypted", "application/pgp-signature", "application/pgp-keys",
    "application/ics", "application/mbox", "message/rfc822", "image/bmp", "image/tiff", "image/avif",
    "image/heic", "image/heif", "image/jxl", "font/ttf", "font/otf", "font/woff", "font/woff2", OCTET})
_PASSIVE_MAJOR = ("audio/", "video/")
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_CHARSET = re.compile(r"""charset\s*=\s*"?([A-Za-z0-9._-]{1,40})"?""", re.IGNORECASE)
_PRINTABLE = re.compile(r"^[\x20-\x7e]{1,255}$")


def media_type(declared: str | None) -> str:
    """The bare ``type/subtype`` of a declared Content-Type, lower-cased; ``OCTET`` if malformed."""
    mime = (declared or "").split(";", 1)[0].strip().lower()
    return mime if _MIME.match(mime) else OCTET


def _passive(mime: str) -> bool:
    if mime in PASSIVE_TYPES or mime.startswith(_PASSIVE_MAJOR):
        return True
    # office formats and the like; an +xml or +json suffix may be parsed as a document
    return mime.startswith("application/vnd.") and not mime.endswith(("+xml", "+json", "xml"))


def _inline_type(mime: str, declared: str) -> str:
    if mime == "text/plain":
        found = _CHARSET.search(declared)
        if found and found.group(1).lower() not in ("utf-7", "utf7"):
            return f"text/plain; charset={found.group(1)}"
    return mime


def serve_type(declared: str | None, inline_ok: bool = True) -> tuple[str, bool]:
    """(Content-Type to send, inline?) for content declared as ``declared``."""
    mime = media_type(declared)
    if inline_ok and mime in INLINE_TYPES:
        return _inline_type(mime, declared or ""), True
    if _passive(mime):
        kept = (declared or "").strip()
        return (kept if _PRINTABLE.match(kept) else mime), False
    return OCTET, False


def user_content_headers(declared: str | None, filename: str | None, inline_ok: bool = True) -> dict[str, str]:
    """Content-Type, Content-Disposition and the hardening headers for one piece of user content."""
    ctype, inline = serve_type(declared, inline_ok)
    return {"Content-Type": ctype, "Content-Disposition": content_disposition(filename, inline),
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": SANDBOX_CSP}


def apply(request: object, headers: dict[str, str]) -> None:
    """Set ``headers`` on a twisted.web request (replacing any value already set)."""
    for name, value in headers.items():
        request.setHeader(name.encode("latin-1"), value.encode("latin-1"))  # type: ignore[attr-defined]
