"""``GET /api/web/emails/{id}/body``: a message's HTML, sanitised, as a page for the reading frame.

``?images=1`` lets remote images load (the reader clicked "Show remote images"); without it they
are dropped and blocked (tau.web.sanitize). A message without HTML gets its text, escaped.
"""

from __future__ import annotations

import html as htmllib
from typing import TYPE_CHECKING, Any

from tau.http.router import Response, query_arg
from tau.mail.api import EmailsAPI
from tau.mail.mime import view
from tau.web import sanitize

if TYPE_CHECKING:
    from tau.registry import Registry


def render(raw: bytes, remote_images: bool) -> tuple[bytes, dict[str, str]]:
    """Blocking (parse + sanitise): run in a thread."""
    parts = view.render(raw)
    body = parts.get("html")
    if body is None:
        body = "<pre>" + htmllib.escape(parts.get("text") or "") + "</pre>"
    return sanitize.document(body, remote_images)


def register(registry: Registry, http: Any) -> None:
    emails = EmailsAPI(registry, registry.mail_store)

    async def body(request: Any, id: str) -> Response:
        _box, _meta, raw = await emails.load(request.user.address, id)
        page, headers = await registry.run_in_thread(render, raw, query_arg(request, "images") == "1")
        return Response(page, 200, "text/html; charset=utf-8", headers)

    http.route("GET", "/api/web/emails/{id}/body", body, scope="mail")
