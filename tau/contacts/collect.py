"""Collected addresses: the people a user mails go to their "Collected" address book.

Mail publishes ``mail.submitted`` after a submission or ``POST /api/emails`` commits; this
subscriber (on the node that published it only) adds recipients no address book of the user
has yet, unless the user opted out (``PUT /api/contacts/settings {"collect": false}``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from tau.bus import events

if TYPE_CHECKING:
    from tau.contacts.domain import Contacts
    from tau.registry import Registry

log = Logger()


class Collector:
    def __init__(self, registry: Registry, contacts: Contacts) -> None:
        self.registry, self.contacts = registry, contacts

    def subscribe(self) -> None:
        bus = self.registry.bus
        getattr(bus, "subscribe_local", bus.subscribe)(events.MAIL_SUBMITTED, self._on_event)

    def _on_event(self, *args: Any) -> None:
        event = args[-1]
        if not isinstance(event, dict):
            return
        user, recipients = event.get("user"), event.get("recipients")
        if not isinstance(user, str) or not isinstance(recipients, list):
            return
        d = defer.ensureDeferred(self.contacts.collect(user, [r for r in recipients if isinstance(r, str)]))
        d.addErrback(lambda f: log.failure("collecting the addresses {user} mailed failed", f, user=user))
