"""``/ws/mail``: tells an open web app that a mailbox changed, so new mail shows without reload.

Frames pushed: ``{"type": "mailbox", "mailbox", "kind"}`` for every ``mailbox.changed`` event of
the socket's user (any node: the bus carries it through Redis). The app then re-reads the folder
counts and the open list through the REST API; the socket carries no message content.
"""

from __future__ import annotations

from typing import Any

from tau.bus.events import MAILBOX_CHANGED
from tau.http.websocket import JsonSocket


class MailSocket(JsonSocket):
    scope = "mail"
    rate_capacity = 20.0
    rate_per_second = 2.0

    def opened(self) -> None:
        self._subscription = self.registry.bus.subscribe(MAILBOX_CHANGED, self._changed)

    def closed(self) -> None:
        self._subscription.cancel()

    def _changed(self, topic: str, event: dict[str, Any]) -> None:
        if event.get("user") == self.user.address:
            self.send_json({"type": "mailbox", "mailbox": event.get("mailbox"), "kind": event.get("kind")})
