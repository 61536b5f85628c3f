"""The web app's ``install``: the shell at ``/``, its assets under ``/app/``, the reading frame's
sanitised HTML and ``/ws/mail``; and the session cookie accepted on the REST APIs the app calls
(``tau.http.cookie_session``: state-changing calls need the CSRF header)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tau.registry import Registry

#: REST prefixes the app's views call with the session cookie (bearer routes only; never DAV)
COOKIE_PREFIXES = ("/api/web/", "/api/emails", "/api/mailboxes", "/api/messages", "/api/conversations",
                   "/api/keys", "/api/presence", "/api/calls", "/api/events", "/api/calendars", "/api/files",
                   "/api/trash", "/api/uploads", "/api/shares", "/api/contacts", "/api/addressbooks", "/api/account")


def install(registry: Registry, host: Any) -> None:
    http = getattr(host, "http", None)
    if http is None:
        return
    from tau.http.websocket import make_resource
    from tau.web import mailsocket, mailview, pages

    pages.register(registry, http)
    mailview.register(registry, http)
    http.mount("/ws/mail", make_resource(registry, mailsocket.MailSocket), auth="none")
    for prefix in COOKIE_PREFIXES:
        http.accept_session_cookie(prefix)
    registry.services["web"] = "ok"
