"""Mail → cloud, outgoing side: rewrite a MIME message as a stream, big attachments become links.

Why a hand-written streaming pass rather than ``email.message_from_bytes``: a submitted message
can be hundreds of MiB and the standard parser holds all of it, several times over. Here the
message is read line by line (from the blob store, in a worker thread); a candidate part's body
is held only until it proves bigger than the threshold (so at most ~4/3 of the threshold), then
decoded straight into a new TauCloud blob while the rest of the message is copied to a new mail
blob. The part is replaced by a short text/plain part naming the file, its size and its link.

Boundaries follow RFC 2046 §5.1.1: the CRLF before a delimiter belongs to the delimiter,
whitespace may follow it, and an outer delimiter also ends an unclosed inner multipart.
Signed and encrypted multiparts (RFC 1847, RFC 3156) are copied untouched: a changed part would
break the signature, and an encrypted one cannot be looked into. Anything this pass cannot make
sense of (a header block over 64 KiB) raises ``Unparseable``; the caller then sends the message
as it was.
"""

from __future__ import annotations

import binascii
import email.parser
import email.policy
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.message import MIMEPart
from typing import Any, Protocol

MAX_HEADER = 64 * 1024      # bytes of one part's header block
MAX_LINE = 64 * 1024        # longer "lines" are cut (they cannot be delimiters anyway)
MAX_NAME = 200              # characters of a stored file name
FROZEN = ("multipart/signed", "multipart/encrypted")
_NOT_B64 = re.compile(rb"[^A-Za-z0-9+/=]")


class Unparseable(Exception):
    """The message is too broken to rewrite safely; it goes out unchanged."""


class Writer(Protocol):
    """The part of ``SyncBlobWriter`` used here."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> Any: ...

    def abort(self) -> None: ...


@dataclass
class Found:
    """One attachment moved out of the message into a (committed) files blob."""

    name: str
    content_type: str
    key: str
    size: int
    token: str


def safe_name(raw: str | None, fallback: str = "attachment") -> str:
    """A file name fit for the cloud: last path segment only, no control characters.

    ``../../x`` and ``C:\\evil\\x`` both become ``x``; ``.``/``..``/empty become the fallback.
    """
    text = (raw or "").replace("\\", "/").split("/")[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C").strip()
    if text in ("", ".", ".."):
        text = fallback
    if len(text) > MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        ext = ext[:20] if dot and stem else ""
        text = text[: MAX_NAME - len(ext) - 1].rstrip() + ("." + ext if ext else "")
    return text


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover - the loop always returns


def link_text(name: str, size: int, url: str) -> str:
    """What the recipient reads instead of the attachment (the same for SMTP and the API)."""
    return (f"The attachment \"{name}\" ({human_size(size)}) was too large to send by mail.\n"
            f"Download it here:\n{url}\n")


def replacement_part(name: str, size: int, url: str) -> bytes:
    """The text/plain part standing in for an attachment (ends with the CRLF of the next delimiter)."""
    part = MIMEPart(policy=email.policy.SMTP)
    part.set_content(link_text(name, size, url), cte="quoted-printable", disposition="inline")
    out = part.as_bytes(policy=email.policy.SMTP)
    return out if out.endswith(b"\r\n") else out + b"\r\n"


# -- transfer decodings (RFC 2045 §6) ---------------------------------------------------------

class _Identity:
    """7bit/8bit/binary (and unknown encodings): the bytes as they are, line breaks held back
    one line because the last one belongs to the closing delimiter."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, line: bytes) -> bytes:
        if line.endswith(b"\r\n"):
            body, end = line[:-2], b"\r\n"
        elif line.endswith(b"\n"):
            body, end = line[:-1], b"\n"
        else:
            body, end = line, b""
        out, self.pending = self.pending + body, end
        return out

    def flush(self) -> bytes:
        return b""


class _QuotedPrintable(_Identity):
    def feed(self, line: bytes) -> bytes:
        hard = line.endswith(b"\n")
        body = line.rstrip(b"\r\n").rstrip(b" \t")      # §6.7 rule 3: trailing blanks are padding
        if body.endswith(b"="):                          # soft line break
            out, self.pending = self.pending + binascii.a2b_qp(body[:-1]), b""
        else:
            out, self.pending = self.pending + binascii.a2b_qp(body), (b"\r\n" if hard else b"")
        return out


class _Base64:
    def __init__(self) -> None:
        self.carry = b""

    def feed(self, line: bytes) -> bytes:
        data = self.carry + _NOT_B64.sub(b"", line)
        cut = len(data) - len(data) % 4
        self.carry = data[cut:]
        return _b64(data[:cut]) if cut else b""

    def flush(self) -> bytes:
        rest, self.carry = self.carry, b""
        return _b64(rest + b"=" * (-len(rest) % 4)) if len(rest) > 1 else b""


def _b64(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:      # hostile padding: what can be decoded, quad by quad
        out = bytearray()
        for i in range(0, len(data), 4):
            try:
                out += binascii.a2b_base64(data[i:i + 4])
            except binascii.Error:
                continue
        return bytes(out)


def _decoder(cte: str) -> Any:
    if cte == "base64":
        return _Base64()
    if cte == "quoted-printable":
        return _QuotedPrintable()
    return _Identity()


# -- headers -------------------------------------------------------------------------------------

@dataclass
class _Head:
    content_type: str = "text/plain"
    boundary: bytes | None = None
    disposition: str | None = None
    filename: str | None = None
    cte: str = ""


def _parse_head(raw: bytes) -> _Head:
    """The few fields that matter, leniently: a field that does not parse keeps its default."""
    head = _Head()
    msg = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    for name, get in (("content_type", msg.get_content_type), ("disposition", msg.get_content_disposition),
                      ("filename", msg.get_filename)):
        try:
            setattr(head, name, get())
        except Exception:  # noqa: BLE001 - a malformed header is the sender's problem, not a crash
            pass
    try:
        boundary = msg.get_boundary()
        head.boundary = boundary.encode("ascii", "surrogateescape") if boundary else None
    except Exception:  # noqa: BLE001
        head.boundary = None
    try:
        head.cte = str(msg.get("content-transfer-encoding", "") or "").strip().lower()
    except Exception:  # noqa: BLE001
        head.cte = ""
    return head


# -- the rewriter -------------------------------------------------------------------------------

@dataclass
class _Part:
    head: bytes
    name: str
    content_type: str
    cte: str
    decoder: Any
    held: list[bytes] | None = field(default_factory=list)
    writer: Writer | None = None
    size: int = 0


class Rewriter:
    """Feed lines; ``found`` lists the attachments moved out; ``hopeless`` means stop (nothing to do)."""

    def __init__(self, write: Callable[[bytes], None], new_blob: Callable[[], Writer], threshold: int,
                 url_for: Callable[[str], str], new_token: Callable[[], str]) -> None:
        self._write, self._new_blob = write, new_blob
        self._threshold, self._url_for, self._new_token = threshold, url_for, new_token
        self._stack: list[bytes] = []           # open delimiters (b"--" + boundary), innermost last
        self._frozen_at: int | None = None      # stack depth of an open signed/encrypted multipart
        self._state = "head"
        self._head: list[bytes] = []
        self._head_size = 0
        self._part: _Part | None = None
        self.found: list[Found] = []
        self.hopeless = False

    def feed(self, line: bytes) -> None:
        if self._state in ("head", "part_head"):
            if self._state == "part_head" and self._delimiter(line) is not None:
                self._flush_head()      # a part header without its blank line: keep it as it was
                self._copy(line)
                return
            self._head.append(line)
            self._head_size += len(line)
            if self._head_size > MAX_HEADER:
                raise Unparseable("header block too long")
            if line in (b"\r\n", b"\n"):
                self._header_done()
        elif self._state == "attach":
            self._attach_line(line)
        else:
            self._copy(line)

    def finish(self) -> None:
        if self._state in ("head", "part_head"):
            self._flush_head()
        elif self._state == "attach":
            self._end_part()

    def abort(self) -> None:
        """Throw away the blob of the part in progress (committed ones are in ``found``)."""
        if self._part is not None and self._part.writer is not None:
            self._part.writer.abort()
        self._part = None

    # -- structure ---------------------------------------------------------------------------
    def _delimiter(self, line: bytes) -> tuple[int, bool] | None:
        if not self._stack or not line.startswith(b"--"):
            return None
        text = line.rstrip(b" \t\r\n")
        for i in range(len(self._stack) - 1, -1, -1):
            if text == self._stack[i]:
                return i, False
            if text == self._stack[i] + b"--":
                return i, True
        return None

    def _copy(self, line: bytes) -> None:
        hit = self._delimiter(line)
        self._write(line)
        if hit is None:
            return
        index, closing = hit
        del self._stack[index if closing else index + 1:]
        if self._frozen_at is not None and len(self._stack) < self._frozen_at:
            self._frozen_at = None
        self._state = "copy" if closing else "part_head"
        self._head, self._head_size = [], 0

    def _flush_head(self) -> None:
        for line in self._head:
            self._write(line)
        self._head, self._head_size = [], 0
        self._state = "copy"

    def _header_done(self) -> None:
        raw = b"".join(self._head)
        self._head, self._head_size = [], 0
        head = _parse_head(raw)
        multipart = head.content_type.startswith("multipart/") and head.boundary
        if self._state == "head":
            self._write(raw)
            self._state = "copy"
            if not multipart or head.content_type in FROZEN:
                self.hopeless = True          # single-part, signed or encrypted: nothing to take out
                return
        elif not multipart and self._frozen_at is None and _is_attachment(head):
            name = safe_name(head.filename, "attachment")
            self._part = _Part(raw, name, head.content_type, head.cte, _decoder(head.cte))
            self._state = "attach"
            return
        else:
            self._write(raw)
            self._state = "copy"
        if multipart:
            assert head.boundary is not None
            self._stack.append(b"--" + head.boundary)
            if head.content_type in FROZEN and self._frozen_at is None:
                self._frozen_at = len(self._stack)

    # -- one candidate attachment ------------------------------------------------------------
    def _attach_line(self, line: bytes) -> None:
        if self._delimiter(line) is not None:
            self._end_part()
            self._copy(line)
            return
        part = self._part
        assert part is not None
        data = part.decoder.feed(line)
        part.size += len(data)
        if part.writer is not None:
            part.writer.write(data)
            return
        assert part.held is not None
        part.held.append(line)
        if part.size > self._threshold:
            self._spill(part)

    def _spill(self, part: _Part) -> None:
        """Over the threshold: decode what was held into a new blob and hold nothing more."""
        part.writer = self._new_blob()
        replay = _decoder(part.cte)
        for held in part.held or ():
            part.writer.write(replay.feed(held))
        part.held = None

    def _end_part(self) -> None:
        part, self._part = self._part, None
        assert part is not None
        self._state = "copy"
        tail = part.decoder.flush()
        part.size += len(tail)
        if part.writer is None and part.size <= self._threshold:
            self._write(part.head)
            for line in part.held or ():
                self._write(line)
            return
        if part.writer is None:
            self._spill(part)
        assert part.writer is not None
        self._part = part                     # so abort() can reach the writer if commit fails
        part.writer.write(tail)
        info = part.writer.commit()
        self._part = None
        token = self._new_token()
        self.found.append(Found(part.name, part.content_type, info.key, info.size, token))
        self._write(replacement_part(part.name, info.size, self._url_for(token)))


def _is_attachment(head: _Head) -> bool:
    """Attachments, not bodies: ``attachment`` disposition, or a file name without ``inline``
    (an inline image with a name is part of an HTML body and stays)."""
    if head.content_type.startswith("multipart/"):
        return False
    return head.disposition == "attachment" or (head.disposition != "inline" and bool(head.filename))


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines with their endings, from arbitrary chunks; a run over ``MAX_LINE`` is cut into pieces."""
    rest = b""
    for chunk in chunks:
        data = rest + chunk if rest else chunk
        lines = data.split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line + b"\n"
        while len(rest) > MAX_LINE:
            yield rest[:MAX_LINE]
            rest = rest[MAX_LINE:]
    if rest:
        yield rest


def rewrite(chunks: Iterable[bytes], write: Callable[[bytes], None], new_blob: Callable[[], Writer],
            threshold: int, url_for: Callable[[str], str], new_token: Callable[[], str]) -> list[Found]:
    """Copy the message in ``chunks`` to ``write`` with every attachment over ``threshold`` bytes
    (decoded) moved to a blob from ``new_blob``. Returns what was moved; an empty list means the
    output is not needed (the caller throws it away). On error nothing in progress is kept; blobs
    already committed are listed on the exception as ``found``."""
    rewriter = Rewriter(write, new_blob, threshold, url_for, new_token)
    try:
        for line in split_lines(chunks):
            rewriter.feed(line)
            if rewriter.hopeless:
                return []
        rewriter.finish()
    except BaseException as exc:
        rewriter.abort()
        exc.found = rewriter.found  # type: ignore[attr-defined]
        raise
    return rewriter.found
