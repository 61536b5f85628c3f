"""Install the cross-service flows: ``/api/emails/{id}/call|chat|event``, attachment save, and the
two automatic ones: the chat digest (``tau.flows.digest``) and attachment links on outgoing mail
(``tau.flows.attach_links``, reached by SMTP submission and ``POST /api/emails`` through
``registry.attachment_links``).

The domain objects it joins (``calls``, ``messenger``, ``files_tree``, ``calendars``) come from
the registry; it asks ``registry.serving`` at use time whether the calendar runs here, so the
plugins' order does not matter. ``calls`` is a signalling-only handle (the connect plugin's own
adds media): it holds no state beyond the database and the bus, so every notification still goes
through the (cluster-wide) bus.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tau.flows import common
from tau.http.errors import HttpError
from tau.http.router import Response, json_response

if TYPE_CHECKING:
    from tau.calendar.domain import Calendars
    from tau.connect.calls import Calls
    from tau.files.service_tree import FileTree
    from tau.messenger.domain import Messenger
    from tau.registry import Registry


async def _json_body(request: Any) -> dict[str, Any]:
    """An optional JSON object: these endpoints work with no body at all."""
    request.content.seek(0)
    raw = request.content.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise HttpError(400, "invalid_json", "request body is not JSON")
    if not isinstance(body, dict):
        raise HttpError(400, "invalid_json", "request body must be a JSON object")
    return body


class Flows:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.mail_store

    @property
    def calls(self) -> Calls:
        return self.registry.calls

    @property
    def messenger(self) -> Messenger:
        return self.registry.messenger

    @property
    def files(self) -> FileTree:
        return self.registry.files_tree

    @property
    def calendars(self) -> Calendars | None:
        """The calendar service's, when it runs here (events need its scheduling)."""
        return self.registry.calendars if self.registry.serving("calendar") else None

    async def send_mail(self, user: Any, to: list[str], subject: str, text: str) -> Any:
        """Plain text mail from ``user`` (raises ``tau.mail.errors.MailError`` when refused)."""
        from tau.mail import send
        from tau.mail.compose import Draft

        return await send.send(self.registry, self.store, user, Draft(to, [], [], subject, text, None))

    async def conference(self, user: Any, fields: dict[str, Any]) -> str:
        """Event → call, for ``POST /api/events`` with ``conference: true`` (tau.flows.event_call)."""
        from tau.flows.event_call import add_room

        return await add_room(self, user, fields)

    # -- handlers -------------------------------------------------------------------------------
    async def _mail(self, request: Any, id: str) -> common.Mail:
        return await common.load(self.registry, self.store, request.user, id)

    async def call(self, request: Any, id: str) -> Response:
        from tau.flows.mail_call import start_call

        body = await _json_body(request)
        return json_response(await start_call(self, request.user, await self._mail(request, id), body), 201)

    async def chat(self, request: Any, id: str) -> Response:
        from tau.flows.mail_chat import open_chat

        body = await _json_body(request)
        return json_response(await open_chat(self, request.user, await self._mail(request, id), body), 201)

    async def event(self, request: Any, id: str) -> Response:
        from tau.flows.mail_event import make_event

        body = await _json_body(request)
        return json_response(await make_event(self, request.user, await self._mail(request, id), body), 201)

    async def save(self, request: Any, id: str, n: str) -> Response:
        from tau.flows.mail_cloud import save_attachment

        if not n.isdigit():
            raise HttpError(404, "not_found", "no such attachment")
        body = await _json_body(request)
        mail = await self._mail(request, id)
        return json_response(await save_attachment(self, request.user, mail, int(n), body), 201)


def install(registry: Registry, host: Any) -> None:
    from functools import partial

    from tau.flows.chat_call import start

    flows = registry.flows
    host.add_service(registry.chat_digest)
    # chat sockets ask the flows to start a call (messenger does not import flows)
    registry.messenger.frame_hooks["call.start"] = partial(start, flows)
    if host.http is None:
        return
    host.http.route("POST", "/api/emails/{id}/call", flows.call, scope="mail calls")
    host.http.route("POST", "/api/emails/{id}/chat", flows.chat, scope="mail chat")
    host.http.route("POST", "/api/emails/{id}/event", flows.event, scope="mail calendar")
    host.http.route("POST", "/api/emails/{id}/attachments/{n}/save", flows.save, scope="mail files")
    registry.services["flows"] = "ok"
