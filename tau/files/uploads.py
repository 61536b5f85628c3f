"""Streamed REST uploads: a raw body, or the ``file`` field of a multipart/form-data body.

The multipart parser is incremental (RFC 7578): it holds back only as many bytes as the
boundary delimiter could span, so the file part goes to the blob writer as it arrives and a
huge form never sits in memory. Small text fields (``path``, ``name``) are kept, up to 4 KiB.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tau.dav.put import UploadBody

MAX_FIELD = 4096
MAX_HEADERS = 8192
_PARAM = re.compile(r';\s*([a-zA-Z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))')


def _params(value: str) -> dict[str, str]:
    return {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM.finditer(value)}


class MultipartUpload(UploadBody):
    """An UploadBody fed only with the bytes of the multipart field named ``file``."""

    def __init__(self, request: Any, length: int | None, writer_factory: Callable[[], Any], boundary: bytes) -> None:
        super().__init__(request, None, writer_factory)
        self._delim = b"\r\n--" + boundary
        self._buf = b"\r\n"  # so the first boundary matches the same delimiter
        self._state = "preamble"
        self._field: str | None = None
        self._field_value = bytearray()
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_seen = False
        self.malformed = False

    def write(self, data: bytes) -> None:
        if self.malformed or self._state == "done":
            return
        self._buf += data
        while self._step():
            pass

    def _step(self) -> bool:
        if self._state in ("preamble", "data", "skip", "field"):
            at = self._buf.find(self._delim)
            if at < 0:
                keep = len(self._delim) + 1
                if len(self._buf) > keep:
                    self._emit(self._buf[:-keep])
                    self._buf = self._buf[-keep:]
                return False
            self._emit(self._buf[:at])
            self._end_part()
            self._buf = self._buf[at + len(self._delim):]
            self._state = "after"
            return True
        if self._state == "after":
            if len(self._buf) < 2:
                return False
            if self._buf[:2] == b"--":
                self._state = "done"
                return False
            end = self._buf.find(b"\r\n")
            if end < 0:
                return len(self._buf) < 256 or self._fail()
            self._buf = self._buf[end + 2:]
            self._state = "headers"
            return True
        if self._state == "headers":
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return len(self._buf) < MAX_HEADERS or self._fail()
            self._start_part(self._buf[:end].decode("utf-8", "replace"))
            self._buf = self._buf[end + 4:]  # the body ends at the next CRLF--boundary
            return True
        return False

    def _fail(self) -> bool:
        self.malformed = True
        return False

    def _start_part(self, head: str) -> None:
        name = filename = None
        for line in head.split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                params = _params(value)
                name, filename = params.get("name"), params.get("filename")
        if name == "file" and not self.file_seen:
            self.file_seen = True
            self.filename = filename
            self._state = "data"
        elif name and len(self.fields) < 16:
            self._field, self._field_value = name, bytearray()
            self._state = "field"
        else:
            self._state = "skip"

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if self._state == "data":
            super().write(data)
        elif self._state == "field" and len(self._field_value) + len(data) <= MAX_FIELD:
            self._field_value += data

    def _end_part(self) -> None:
        if self._state == "field" and self._field is not None:
            self.fields[self._field] = self._field_value.decode("utf-8", "replace")
            self._field = None


def upload_factory(writer_factory: Callable[[], Any]) -> Callable[[Any, int | None], Any]:
    """The body-sink factory for REST uploads: multipart when the Content-Type says so."""

    def make(request: Any, length: int | None) -> Any:
        ctype = (request.getHeader(b"content-type") or b"").decode("latin-1")
        if ctype.split(";")[0].strip().lower() == "multipart/form-data":
            boundary = _params(ctype).get("boundary")
            if boundary and len(boundary) <= 200:
                return MultipartUpload(request, length, writer_factory, boundary.encode("latin-1"))
        return UploadBody(request, length, writer_factory)

    return make
