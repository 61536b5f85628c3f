"""DAV errors: an HTTP status plus, where the RFC names one, a precondition element (RFC 4918 §16)."""

from __future__ import annotations

from xml.sax.saxutils import escape

REASONS = {200: "OK", 201: "Created", 204: "No Content", 207: "Multi-Status", 206: "Partial Content",
           304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed",
           413: "Payload Too Large", 415: "Unsupported Media Type", 416: "Range Not Satisfiable",
           423: "Locked", 424: "Failed Dependency", 500: "Internal Server Error", 501: "Not Implemented",
           502: "Bad Gateway", 503: "Service Unavailable", 507: "Insufficient Storage"}


def status_line(code: int) -> str:
    """``HTTP/1.1 404 Not Found`` as used in ``DAV:status`` elements."""
    return f"HTTP/1.1 {code} {REASONS.get(code, 'Unknown')}"


class DavError(Exception):
    """Raise from a method handler; the server answers ``status`` with a ``DAV:error`` body.

    ``condition`` is an inner XML fragment naming the failed precondition, e.g.
    ``<D:propfind-finite-depth/>`` (the ``D`` prefix is bound to ``DAV:``).
    """

    def __init__(self, status: int, message: str = "", condition: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message or REASONS.get(status, "error")
        self.condition = condition
        self.headers = headers or {}
        super().__init__(f"{status} {self.message}")

    def body(self) -> bytes:
        inner = self.condition or ""
        text = escape(self.message)
        return (f'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:">{inner}'
                f'<D:responsedescription>{text}</D:responsedescription></D:error>').encode()


def locked(href: str | None = None) -> DavError:
    """423 with ``DAV:lock-token-submitted`` naming the locked resource (RFC 4918 §16)."""
    inner = f"<D:href>{escape(href)}</D:href>" if href else ""
    return DavError(423, "resource is locked", f"<D:lock-token-submitted>{inner}</D:lock-token-submitted>")
