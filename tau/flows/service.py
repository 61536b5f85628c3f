"""Install the cross-service flows: ``/api/emails/{id}/call|chat|event``, attachment save, and the
two automatic ones: the chat digest (``tau.flows.digest``) and attachment links on outgoing mail
(``tau.flows.attach_links``, reached by SMTP submission and ``POST /api/emails`` through
``registry.attachment_links``).

Installed last (order 90) so the services it joins are already there. It builds its own thin
handles on their domain objects (``Calls``, ``Messenger``, ``FileTree``): those hold no state of
their own beyond the database and the bus, so a second handle behaves exactly like the one the
service itself uses, and every notification still goes through the (cluster-wide) bus.
"""

from __future__ import annotations

import json
from typing import Any

from tau.flows import common
from tau.http.errors import HttpError
from tau.http.router import Response, json_response


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
    def __init__(self, registry: Any) -> None:

        self.registry = registry
        self.store = registry.mail_store
        self._calls: Any = None
        self._messenger: Any = None
        self._files: Any = None

    @property
    def calls(self) -> Any:
        if self._calls is None:
            from tau.connect.calls import Calls

            self._calls = Calls(self.registry)
        return self._calls

    @property
    def messenger(self) -> Any:
        if self._messenger is None:
            from tau.messenger.domain import Messenger

            # the messenger service's own instance when it runs here (its presence knows the sockets)
            self._messenger = self.registry._built.get("messenger") or Messenger(self.registry)
        return self._messenger

    @property
    def files(self) -> Any:
        if self._files is None:
            from tau.files.service_tree import FileTree, files_blob_store

            self._files = FileTree(self.registry, files_blob_store(self.registry))
        return self._files

    @property
    def calendars(self) -> Any:
        return self.registry._built.get("calendars")

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


def install(registry: Any, host: Any) -> None:
    from tau.flows.digest import ChatDigest

    if registry.config.flows.attachment_link_threshold:
        from tau.flows.attach_links import AttachmentLinks

        registry.attachment_links = AttachmentLinks(registry)
    digest = ChatDigest(registry)
    host.add_service(digest)
    registry.provide("chat_digest", digest)
    if host.http is None:
        return
    flows = Flows(registry)
    host.http.route("POST", "/api/emails/{id}/call", flows.call, scope="mail calls")
    host.http.route("POST", "/api/emails/{id}/chat", flows.chat, scope="mail chat")
    host.http.route("POST", "/api/emails/{id}/event", flows.event, scope="mail calendar")
    host.http.route("POST", "/api/emails/{id}/attachments/{n}/save", flows.save, scope="mail files")
    registry.provide("flows", flows)
    if "messenger" in registry.services:      # installed before (order): its sockets ask us for call.start
        from functools import partial

        from tau.flows.chat_call import start

        flows.messenger.frame_hooks["call.start"] = partial(start, flows)
    registry.services["flows"] = "ok"
