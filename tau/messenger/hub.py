"""Fan-out: events from the bus to this node's live sockets.

The hub is the only consumer of messenger events for real-time delivery. It never reads the
database: each event names its audience (or, for messages, each recipient device and its
envelope), so with a Redis-backed bus every node routes what reaches it to the sockets it holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tau.bus import events

TOPICS = (events.MESSAGE_CREATED, events.MESSAGE_RECEIPT, events.MESSAGE_TYPING, events.MESSAGE_CONVERSATION,
          events.PRESENCE_CHANGED, events.KEYS_LOW)


class Hub:
    def __init__(self, bus: Any) -> None:
        #: address → device id → sockets (a device may hold several, e.g. two tabs)
        self._sockets: dict[str, dict[int, set[Any]]] = {}
        self._subscriptions = [bus.subscribe(topic, self._dispatch) for topic in TOPICS]

    def close(self) -> None:
        for sub in self._subscriptions:
            sub.cancel()

    def register(self, sock: Any) -> None:
        self._sockets.setdefault(sock.user.address, {}).setdefault(sock.device_id, set()).add(sock)

    def unregister(self, sock: Any) -> None:
        devices = self._sockets.get(sock.user.address, {})
        devices.get(sock.device_id, set()).discard(sock)
        if not devices.get(sock.device_id):
            devices.pop(sock.device_id, None)
        if not devices:
            self._sockets.pop(sock.user.address, None)

    def sockets_of(self, user: str) -> Iterator[Any]:
        for socks in list(self._sockets.get(user, {}).values()):
            yield from list(socks)

    def live(self) -> list[tuple[str, str]]:
        """(address, connection id) of every socket on this node (presence keep-alive)."""
        return [(user, s.conn_id) for user, devices in self._sockets.items() for socks in devices.values()
                for s in socks]

    @property
    def count(self) -> int:
        return sum(len(s) for devices in self._sockets.values() for s in devices.values())

    def _dispatch(self, topic: str, event: dict[str, Any]) -> None:
        getattr(self, "_on_" + topic.replace(".", "_"))(event)

    def _on_message_created(self, event: dict[str, Any]) -> None:
        message = event["message"]
        for user, device, envelope in event["deliveries"]:
            for sock in list(self._sockets.get(user, {}).get(device, ())):
                frame = {"type": "message", **message}
                if envelope is not None:
                    frame["envelope"] = envelope
                sock.push_message(frame)

    def _broadcast(self, audience: list[str], frame: dict[str, Any]) -> None:
        for user in audience:
            for sock in self.sockets_of(user):
                sock.send_json(frame)

    def _on_message_receipt(self, event: dict[str, Any]) -> None:
        self._broadcast(event["audience"], {"type": "receipt", **{k: v for k, v in event.items() if k != "audience"}})

    def _on_message_typing(self, event: dict[str, Any]) -> None:
        self._broadcast(event["audience"], {"type": "typing", "conversation": event["conversation"],
                                            "user": event["user"], "state": event["state"]})

    def _on_message_conversation(self, event: dict[str, Any]) -> None:
        self._broadcast(event["audience"], {"type": "conversation", **event["conversation"]})

    def _on_presence_changed(self, event: dict[str, Any]) -> None:
        self._broadcast(event["audience"], {"type": "presence", "user": event["user"], "status": event["status"],
                                            "last_seen": event["last_seen"]})

    def _on_keys_low(self, event: dict[str, Any]) -> None:
        for sock in list(self._sockets.get(event["user"], {}).get(event["device_id"], ())):
            sock.send_json({"type": "prekeys_low", "device_id": event["device_id"], "remaining": event["remaining"]})
