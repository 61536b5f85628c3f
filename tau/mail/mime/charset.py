"""Charset and transfer-encoding decoding that never raises.

RFC 2045 section 6 (Content-Transfer-Encoding), RFC 2047 (encoded words),
RFC 2046 section 4.1.2 (charset parameter; unknown charsets are decoded with
replacement characters rather than refused).
"""

from __future__ import annotations

import binascii
import codecs
import re
from functools import lru_cache

# Codecs Python knows that are not real mail charsets, or that are slow or
# surprising on arbitrary input.
_REFUSED = frozenset(
    {
        "idna",
        "punycode",
        "unicode_escape",
        "raw_unicode_escape",
        "undefined",
        "mbcs",
        "oem",
    }
)

_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "x-unknown": "utf-8",
    "unknown-8bit": "latin-1",
    "x-user-defined": "latin-1",
    "iso-8859-8-i": "iso-8859-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "us-ascii": "ascii",
}


@lru_cache(maxsize=256)
def codec_name(charset: str | None) -> str | None:
    """Return a usable Python text codec name for a MIME charset, or None."""
    if not charset:
        return None
    cs = charset.strip().strip('"').lower()
    # RFC 2231 section 5: charset*language in encoded words.
    cs = cs.split("*", 1)[0]
    cs = _ALIASES.get(cs, cs)
    if not cs or len(cs) > 40:
        return None
    try:
        info = codecs.lookup(cs)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED:
        return None
    if info.name == "ascii":
        # Plenty of "us-ascii" mail carries 8-bit text; decode it leniently.
        return "utf-8"
    return info.name


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Drop NULs and lone surrogates so the text stores in any UTF-8 database."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return _SURROGATE.sub("\ufffd", text)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode ``data`` in ``charset``; unknown charsets fall back to UTF-8
    with replacement (RFC 2046 section 4.1.2 leaves that choice to us).
    The result never holds NUL or lone surrogates."""
    name = codec_name(charset)
    text = None
    if name is not None and name != "utf-8":
        try:
            text = data.decode(name, "replace")
        except Exception:  # noqa: BLE001
            text = None
    if text is None:
        text = data.decode("utf-8", "replace")
        return text.replace("\x00", "") if "\x00" in text else text
    return clean_text(text)


def decode_header_bytes(data: bytes) -> str:
    """Decode raw (possibly 8-bit) header bytes: UTF-8 if valid, else Latin-1."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def b64decode(data: bytes) -> bytes:
    """Lenient base64 (RFC 2045 section 6.8): junk is ignored, padding fixed."""
    data = _B64_JUNK.sub(b"", data)
    rem = len(data) % 4
    if rem == 1:
        data = data[:-1]
    elif rem:
        data += b"=" * (4 - rem)
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        return b""


def qpdecode(data: bytes, header: bool = False) -> bytes:
    """Lenient quoted-printable (RFC 2045 section 6.7, RFC 2047 section 4.2)."""
    try:
        return binascii.a2b_qp(data, header=header)
    except (binascii.Error, ValueError):
        return data


def transfer_decode(data: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding; unknown encodings pass through."""
    enc = encoding.lower()
    if enc == "base64":
        return b64decode(data)
    if enc == "quoted-printable":
        return qpdecode(data)
    return data


_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([QqBb])\?([^?\s]*)\?=")
_ONLY_SPACE = re.compile(r"[ \t\r\n]*\Z")


def _ew_bytes(kind: str, text: str) -> bytes:
    raw = text.encode("ascii", "replace")
    if kind in "Bb":
        return b64decode(raw)
    return qpdecode(raw.replace(b"_", b" "), header=False)


def decode_rfc2047(value: str) -> str:
    """Decode RFC 2047 encoded words; whitespace between adjacent encoded
    words is dropped (RFC 2047 section 6.2).  Adjacent words in the same
    charset are joined before decoding so split multi-byte characters
    survive."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pos = 0
    pend_cs: str | None = None
    pend: list[bytes] = []

    def flush() -> None:
        if pend:
            out.append(decode_bytes(b"".join(pend), pend_cs))
            pend.clear()

    for m in _ENCODED_WORD.finditer(value):
        gap = value[pos : m.start()]
        cs = m.group(1).lower()
        if not (pend and _ONLY_SPACE.match(gap)):
            flush()
            out.append(gap)
        elif cs != pend_cs:
            flush()
        pend_cs = cs
        pend.append(_ew_bytes(m.group(2), m.group(3)))
        pos = m.end()
    flush()
    out.append(value[pos:])
    return "".join(out)
