"""Fan-out of signaling events from the bus to this node's ``/ws/signal`` sockets.

Everything a socket must receive arrives as a bus event, never by a direct call from another
socket, so with issue 9's Redis bus a frame published on node A reaches its target on node B.
The hub reads no database: each ``signal.frame`` event names its audience (one participant of
a room, the whole room, or some users), and the participant lists it carries keep a per-room
roster that lets a sender be told at once that its ``to`` is not in the room.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tau.bus import events

TOPICS = (events.SIGNAL_FRAME, events.CALL_UPDATED)


class SignalHub:
    def __init__(self, bus: Any) -> None:
        self._by_user: dict[str, set[Any]] = {}
        self._rooms: dict[str, set[Any]] = {}
        #: call id → participant id → user address ("" for guests), from the last participants event
        self.rosters: dict[str, dict[str, str]] = {}
        self._subscriptions = [bus.subscribe(topic, self._dispatch) for topic in TOPICS]

    def close(self) -> None:
        for sub in self._subscriptions:
            sub.cancel()

    # -- bookkeeping ----------------------------------------------------------------------------
    def register(self, sock: Any) -> None:
        self._by_user.setdefault(sock.who.address, set()).add(sock)

    def unregister(self, sock: Any) -> None:
        self.exit(sock)
        socks = self._by_user.get(sock.who.address, set())
        socks.discard(sock)
        if not socks:
            self._by_user.pop(sock.who.address, None)

    def enter(self, sock: Any, call_id: str) -> None:
        self._rooms.setdefault(call_id, set()).add(sock)

    def exit(self, sock: Any) -> None:
        call_id = getattr(sock, "call_id", None)
        if call_id is None:
            return
        room = self._rooms.get(call_id, set())
        room.discard(sock)
        if not room:
            self._rooms.pop(call_id, None)

    def room(self, call_id: str) -> Iterator[Any]:
        yield from list(self._rooms.get(call_id, ()))

    def in_room(self, call_id: str, participant_id: str) -> bool:
        return participant_id in self.rosters.get(call_id, {})

    def user_in_room(self, call_id: str, address: str) -> bool:
        return any(user.lower() == address for user in self.rosters.get(call_id, {}).values() if user)

    @property
    def count(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    # -- events ---------------------------------------------------------------------------------
    def _dispatch(self, topic: str, event: dict[str, Any]) -> None:
        if topic == events.SIGNAL_FRAME:
            self._on_signal(event)
        elif topic == events.CALL_UPDATED:
            self._on_call(event)

    def _on_signal(self, event: dict[str, Any]) -> None:
        call_id = event.get("call_id")
        if call_id is not None and "roster" in event:
            if event["roster"]:
                self.rosters[call_id] = event["roster"]
            else:
                self.rosters.pop(call_id, None)
        replace = event.get("replace")
        if replace:
            for sock in self.room(call_id):
                if sock.participant_id == replace["participant"] and sock.conn != replace["conn"]:
                    sock.detach(call_id, "replaced")
        frame = event.get("frame")
        if frame is not None:
            if "users" in event:
                targets = [s for user in event["users"] for s in list(self._by_user.get(user, ()))]
            elif "to_user" in event:
                targets = [s for s in self.room(call_id) if s.who.address.lower() == event["to_user"]]
            elif "to" in event:
                targets = [s for s in self.room(call_id) if s.participant_id == event["to"]]
            else:
                targets = [s for s in self.room(call_id) if s.participant_id != event.get("except")]
            for sock in targets:
                sock.send_json(frame)
        if event.get("kick"):
            for sock in self.room(call_id):
                if sock.participant_id == event["kick"]:
                    sock.detach(call_id, "removed")

    def _on_call(self, event: dict[str, Any]) -> None:
        call = event["call"]
        if event["kind"] == "created" and call["status"] == "ringing" and not call.get("scheduled_for"):
            frame = ringing_frame(call)
            for user in event["audience"]:
                if user != call["host"]:
                    for sock in list(self._by_user.get(user, ())):
                        sock.send_json(frame)
        if call["status"] == "ended":
            frame = {"type": "call_ended", "call_id": call["id"]}
            told = set()
            for sock in self.room(call["id"]):
                sock.send_json(frame)
                sock.detach(call["id"], "ended")
                told.add(sock)
            for user in event["audience"]:  # whoever is still being rung stops ringing
                for sock in list(self._by_user.get(user, ())):
                    if sock not in told:
                        sock.send_json(frame)
            self.rosters.pop(call["id"], None)


def ringing_frame(call: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ringing", "call_id": call["id"], "from": call["host"], "title": call["title"],
            "mode": call["mode"]}
