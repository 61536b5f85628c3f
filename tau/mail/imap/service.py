"""The IMAP service: one factory for ``[listen] imap`` (STARTTLS) and ``imaps`` (implicit TLS).

The factory owns the single ``mailbox.changed`` bus subscription and routes each event to the
connections that have that mailbox selected, so thousands of idle sessions cost one subscriber,
and to the connections of the event's user that asked for NOTIFY (notify.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.protocol import ServerFactory

from tau.bus import events

from . import notify
from .protocol import IMAPConnection

if TYPE_CHECKING:
    from tau.registry import Registry


class IMAPFactory(ServerFactory):
    protocol = IMAPConnection
    noisy = False
    #: what CappedFactory (tau.app.connlimit) says to a client over the connection caps
    refusal = b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"

    def __init__(self, registry: Registry, store: Any = None) -> None:
        self.registry = registry
        self.store = store if store is not None else registry.mail_store
        self._watchers: dict[int, set[IMAPConnection]] = {}
        #: user → connections with NOTIFY SET: they hear about that user's mailboxes only
        self._notifiers: dict[str, set[IMAPConnection]] = {}
        self._defaults_done: set[str] = set()
        #: mailbox id → (results, waiters) of queries shared by the sessions watching it
        self._shared: dict[int, tuple[dict[tuple, Any], dict[tuple, list[defer.Deferred[Any]]]]] = {}
        self.open_connections = 0
        self._gauge = registry.metrics.connections.labels("imap")
        self._subscription = registry.bus.subscribe(events.MAILBOX_CHANGED, self._on_event)

    def buildProtocol(self, addr: Any) -> IMAPConnection:
        return IMAPConnection(self)

    def stop(self) -> None:
        self._subscription.cancel()

    # -- bookkeeping used by the connections -------------------------------------------------------
    def connection_opened(self, conn: IMAPConnection) -> None:
        self.open_connections += 1
        self._gauge.inc()

    def connection_closed(self, conn: IMAPConnection) -> None:
        self.open_connections -= 1
        self._gauge.dec()
        if conn.selected is not None:
            self.unwatch(conn, conn.selected.mailbox_id)
        self.notify_unwatch(conn)

    def watch(self, conn: IMAPConnection, mailbox_id: int) -> None:
        self._watchers.setdefault(mailbox_id, set()).add(conn)

    def unwatch(self, conn: IMAPConnection, mailbox_id: int) -> None:
        conns = self._watchers.get(mailbox_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._watchers[mailbox_id]
                self._shared.pop(mailbox_id, None)

    def notify_watch(self, conn: IMAPConnection) -> None:
        if conn.user is not None:
            self._notifiers.setdefault(conn.user, set()).add(conn)

    def notify_unwatch(self, conn: IMAPConnection) -> None:
        conns = self._notifiers.get(conn.user or "")
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._notifiers[conn.user or ""]

    def _on_event(self, topic: str, event: dict[str, Any]) -> None:
        mailbox_id = event.get("mailbox_id")
        self._shared.pop(mailbox_id, None)  # type: ignore[arg-type]
        for conn in list(self._watchers.get(mailbox_id, ())):  # type: ignore[arg-type]
            conn.mailbox_changed(event)
        for conn in list(self._notifiers.get(str(event.get("user", "")), ())):
            notify.on_event(conn, event)

    async def shared(self, mailbox_id: int, key: tuple, query: Callable[[], Awaitable[Any]]) -> Any:
        """One store query per mailbox change, whatever the number of sessions idling on it.

        Results are kept until the next event for the mailbox; callers must not mutate them.
        """
        entry = self._shared.get(mailbox_id)
        if entry is None:
            entry = self._shared[mailbox_id] = ({}, {})
        results, waiting = entry
        if key in results:
            return results[key]
        if key in waiting:
            d: defer.Deferred[Any] = defer.Deferred()
            waiting[key].append(d)
            return await d
        waiting[key] = []
        try:
            value = await query()
        except Exception as exc:
            for d in waiting.pop(key, []):
                d.errback(exc)
            raise
        if self._shared.get(mailbox_id) is entry:
            results[key] = value
        for d in waiting.pop(key, []):
            d.callback(value)
        return value

    async def ensure_defaults(self, user: str) -> None:
        """Default folders exist for every user who logs in (once per process)."""
        if user not in self._defaults_done:
            await self.store.ensure_defaults(user)
            self._defaults_done.add(user)


def install(registry: Registry, host: Any) -> None:
    factory = IMAPFactory(registry)
    host.add_listener("imap", factory)
    host.add_listener("imaps", factory)
    registry.services["imap"] = "ok"
