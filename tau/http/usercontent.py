"""The headers every response carrying user content gets (one place, used by every download path).

Uploaded bytes must never run on tau's origin: an ``evil.html`` or ``evil.svg`` served inline
would run its script next to ``/admin``. So user content is

* ``Content-Disposition: attachment`` unless its type is on a short inline allow-list (raster
  images, PDF, plain text), and then its ``Content-Type`` is exactly that safe type;
* ``X-Content-Type-Options: nosniff``, so no browser guesses HTML or script from the bytes;
* ``Content-Security-Policy: default-src 'none'; sandbox``: even if rendered it gets an opaque
  origin, no script, no plugins, no forms, no subresources.

An attachment keeps its type only when that type is inert in every loading context
(``<script>``, ``<link rel=stylesheet>``, workers, ``<iframe>``, SVG ``<use>``, XSLT): the passive
allow-list below. Anything else is sent as ``application/octet-stream``, which ``nosniff`` makes
useless as script or style even from the same origin. The type sent is always rebuilt from a
strict parse (:func:`canonical_type`), never the uploader's string: a browser reads
``application/zip;,text/javascript`` as JavaScript.
"""

from __future__ import annotations

import re
from functools import lru_cache

from tau.http.disposition import content_disposition

SANDBOX_CSP = "default-src 'none'; sandbox"
OCTET = "application/octet-stream"
#: shown in the browser (with the type forced to exactly this)
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"})
#: kept (in canonical form) on an attachment: never executed or styled by a browser
PASSIVE_TYPES = INLINE_TYPES | frozenset({
    "text/calendar", "text/vcard", "text/x-vcard", "text/directory", "text/csv", "text/tab-separated-values",
    "text/markdown", "text/x-markdown", "application/zip", "application/gzip", "application/x-gzip",
    "application/x-tar", "application/x-bzip2", "application/x-xz", "application/x-7z-compressed",
    "application/x-rar-compressed", "application/vnd.rar", "application/msword", "application/rtf",
    "application/epub+zip", "application/pgp-encrypted", "application/pgp-signature", "application/pgp-keys",
    "application/ics", "application/mbox", "message/rfc822", "image/bmp", "image/tiff", "image/avif",
    "image/heic", "image/heif", "image/jxl", "font/ttf", "font/otf", "font/woff", "font/woff2", OCTET})
_PASSIVE_MAJOR = ("audio/", "video/")
# RFC 6838 restricted-name (a strict subset of RFC 7230 tchar), lower case only
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_PRINTABLE = re.compile(r"[\t\x20-\x7e]{1,255}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# one piece of a header value: a quoted-string, a run of plain characters, or a separator
_PIECE = re.compile(r'"(?:[^"\\]|\\.)*"|[^";,]+|[;,]|"')
#: the only charsets ever named in a Content-Type tau sends (no UTF-7, no stateful ISO-2022 encodings)
CHARSETS = frozenset({"utf-8", "us-ascii", "iso-8859-1", "iso-8859-2", "iso-8859-15", "windows-1250",
                      "windows-1251", "windows-1252", "koi8-r", "shift_jis", "euc-jp", "euc-kr", "gb2312",
                      "gbk", "gb18030", "big5"})


def _parameters(declared: str) -> list[str] | None:
    """The ``;``-separated pieces of a header value, quoted-strings kept whole.

    None when the value is not one media type: an unquoted ``,`` makes it a list, and a browser
    (Fetch, "extract a MIME type") would take the *last* type of that list.
    """
    pieces, current = [], ""
    for match in _PIECE.finditer(declared):
        piece = match.group(0)
        if piece == "," or piece == '"':  # a list, or an unterminated quote
            return None
        if piece == ";":
            pieces.append(current)
            current = ""
        else:
            current += piece
    pieces.append(current)
    return pieces


def _charset(params: list[str]) -> str | None:
    for param in params:
        name, eq, value = param.partition("=")
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]
        if eq and name.strip().lower() == "charset" and _TOKEN.fullmatch(value):
            return value.lower() if value.lower() in CHARSETS else None
    return None


@lru_cache(maxsize=1024)  # a PROPFIND asks it once per member; few distinct types
def canonical_type(declared: str | None) -> str:
    """The one Content-Type tau stores and sends for ``declared``: a bare lower-case
    ``type/subtype``, plus ``; charset=...`` for ``text/*`` when the charset is on the allow-list.

    The declared string itself is never passed on (``application/zip;,text/javascript`` is
    JavaScript to a browser); anything that is not exactly one well-formed media type is
    ``application/octet-stream``.
    """
    value = declared or ""
    if not _PRINTABLE.fullmatch(value):  # control characters (CR, LF, NUL...), non-ASCII, empty, too long
        return OCTET
    params = _parameters(value)
    if params is None:
        return OCTET
    mime = params[0].strip(" \t").lower()
    if not _MIME.fullmatch(mime):
        return OCTET
    charset = _charset(params[1:]) if mime.startswith("text/") else None
    return f"{mime}; charset={charset}" if charset else mime


def media_type(declared: str | None) -> str:
    """The bare ``type/subtype`` of a declared Content-Type, lower-cased; ``OCTET`` if malformed."""
    return canonical_type(declared).split(";", 1)[0]


def _passive(mime: str) -> bool:
    if mime in PASSIVE_TYPES or mime.startswith(_PASSIVE_MAJOR):
        return True
    # office formats and the like; an +xml or +json suffix may be parsed as a document
    return mime.startswith("application/vnd.") and not mime.endswith(("+xml", "+json", "xml"))


def serve_type(declared: str | None, inline_ok: bool = True) -> tuple[str, bool]:
    """(Content-Type to send, inline?) for content declared as ``declared``: always built from
    :func:`canonical_type`, never the declared string."""
    canonical = canonical_type(declared)
    mime = canonical.split(";", 1)[0]
    if inline_ok and mime in INLINE_TYPES:
        return canonical, True
    if _passive(mime):
        return canonical, False
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
