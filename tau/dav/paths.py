"""Request paths and Destination headers → normalised segments (RFC 3986 §6, RFC 4918 §10.3).

A path is percent-decoded once, must be UTF-8, is NFC-normalised (macOS sends NFD, Windows NFC:
both must name the same file), and may not contain ``.``/``..`` segments, empty segments, NUL,
control characters or backslashes. Nothing here can produce a path above the mount point: the
caller joins segments itself and never hands the raw string to a filesystem.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote_to_bytes, urlsplit

from tau.dav.errors import DavError

MAX_SEGMENT = 255
MAX_DEPTH = 64
_FORBIDDEN = {chr(c) for c in range(0x20)} | {"\x7f", "\\"}


def clean_segment(raw: str) -> str:
    """One decoded path segment, validated and NFC-normalised; 400 for anything unsafe."""
    seg = unicodedata.normalize("NFC", raw)
    if seg in ("", ".", "..") or any(ch in _FORBIDDEN for ch in seg):
        raise DavError(400, "invalid path segment")
    if len(seg.encode("utf-8")) > MAX_SEGMENT:
        raise DavError(400, "path segment too long")
    return seg


def split_path(raw_path: str | bytes) -> tuple[list[str], bool]:
    """Percent-encoded absolute path → (segments, trailing slash).

    Each segment is decoded separately, so ``%2F`` cannot smuggle a separator and ``%2e%2e``
    is caught as ``..`` after decoding.
    """
    if isinstance(raw_path, bytes):
        raw_path = raw_path.decode("latin-1")
    raw_path = raw_path.split("?", 1)[0]
    if "#" in raw_path:
        raise DavError(400, "a request URI may not carry a fragment")
    if not raw_path.startswith("/"):
        raise DavError(400, "path must be absolute")
    parts = raw_path.split("/")[1:]
    trailing = raw_path.endswith("/") and len(raw_path) > 1
    if trailing:
        parts = parts[:-1]
    out: list[str] = []
    for part in parts:
        try:
            decoded = unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError:
            raise DavError(400, "path is not valid UTF-8")
        if "/" in decoded:
            raise DavError(400, "encoded slash in path")
        out.append(clean_segment(decoded))
    if len(out) > MAX_DEPTH:
        raise DavError(400, "path too deep")
    return out, trailing


def strip_prefix(segments: list[str], prefix: list[str]) -> list[str]:
    """Segments below the mount ``prefix``; 403 when the path lies outside it (RFC 4918 §9.8.4)."""
    if segments[:len(prefix)] != prefix:
        raise DavError(403, "path outside this DAV tree")
    return segments[len(prefix):]


def parse_destination(header: str | None, host: str | None, secure: bool) -> list[str]:
    """The Destination header (RFC 4918 §10.3) as absolute-path segments.

    An absolute URL must name this server (scheme-less comparison of host and port): another
    host is 502 Bad Gateway, as the RFC prescribes for a destination on another server.
    """
    if not header:
        raise DavError(400, "Destination header required")
    try:
        parts = urlsplit(header.strip())
    except ValueError:
        raise DavError(400, "malformed Destination")
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https"):
            raise DavError(400, "unsupported Destination scheme")
        if host is None or not _same_host(parts.netloc, host, parts.scheme):
            raise DavError(502, "Destination is on another server")
    if parts.query or parts.fragment:
        raise DavError(400, "Destination may not have a query or fragment")
    segments, _ = split_path(parts.path or "/")
    return segments


def _same_host(netloc: str, host: str, scheme: str) -> bool:
    default = "443" if scheme == "https" else "80"

    def norm(value: str) -> str:
        value = value.rsplit("@", 1)[-1].lower()
        if value.startswith("["):
            return value if "]:" in value else value + ":" + default
        return value if ":" in value else value + ":" + default

    return norm(netloc) == norm(host) or _loopback_equal(norm(netloc), norm(host))


def _loopback_equal(a: str, b: str) -> bool:
    """``localhost:8080`` and ``127.0.0.1:8080`` are the same server for clients on this machine."""
    loop = ("localhost", "127.0.0.1", "[::1]")
    ha, _, pa = a.rpartition(":")
    hb, _, pb = b.rpartition(":")
    return pa == pb and ha in loop and hb in loop


_SAFE = "@:+!$&'()*,;=~"
_UNRESERVED = re.compile(r"[A-Za-z0-9_.\-@:+!$&'()*,;=~]*")


def encode_segment(segment: str) -> str:
    """One segment percent-encoded for a ``DAV:href``; most names need no encoding (fast path)."""
    if _UNRESERVED.fullmatch(segment) is not None:
        return segment
    return quote(segment, safe=_SAFE)


def encode_path(segments: list[str], collection: bool = False) -> str:
    """Segments → a percent-encoded absolute path (the form used in ``DAV:href``)."""
    path = "/" + "/".join(map(encode_segment, segments))
    if collection and not path.endswith("/"):
        path += "/"
    return path
