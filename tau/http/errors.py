"""The one error format (INTERFACE.md): ``{"error", "message", "timestamp", "request_id"}``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 410: "gone",
                411: "length_required", 412: "precondition_failed", 413: "payload_too_large",
                415: "unsupported_media_type", 422: "unprocessable_entity", 429: "rate_limited",
                500: "internal_error", 503: "unavailable"}


class HttpError(Exception):
    """Raise from a handler; the router answers with the JSON error body."""

    #: a body in another format than the JSON error (a DAV ``DAV:error`` refused at the headers)
    body: bytes | None = None
    content_type: str = "application/json"

    def __init__(self, status: int, code: str | None = None, message: str = "",
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.message = message or self.code.replace("_", " ")
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(f"{status} {self.code}: {self.message}")


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def error_body(code: str, message: str, request_id: str, extra: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"error": code, "message": message, "timestamp": now_rfc3339(),
                            "request_id": request_id}
    if extra:
        for key, value in extra.items():
            body.setdefault(key, value)
    return json.dumps(body).encode()
