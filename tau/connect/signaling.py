"""``/ws/signal``: WebRTC signaling for calls (INTERFACE.md, WebSocket frames).

A socket is a user's line: ringing notifications reach it as soon as it opens (``hello``, then
any call ringing for the user). Joining a room (``join {call_id}``, checked against the
invitation and the call's status every time) makes it a participant with a stable id; a
reconnect with the same credentials gets the same id and replaces the old session. In a room:

- ``offer``/``answer {to, sdp}`` and ``ice {to, candidate}`` are relayed unchanged plus ``from``
  (the sender's participant id) to ``to``: another participant's id, a user's address (every
  session of that user in the room; the relayed frame then also carries ``from_user``), or
  ``"sfu"``, the media server of a group call;
- ``participants`` goes to the room on every join and leave (after ``joined``, which answers the
  joining socket alone with its own id); ``state`` on ``mute``/``hand``; ``accepted``,
  ``declined``, ``removed``, ``left``, ``call_ended`` and ``ringing`` as before;
- ``accept``/``decline`` answer a ringing call (accept = join and tell the room);
- a frame naming another room, malformed SDP or candidates get error frames, the socket stays;
  trickle ICE has its own token bucket so a flood is cut short without starving SDP.

Guests authenticate with their join link's token (``?guest=TOKEN``) instead of a Bearer token.
"""

from __future__ import annotations

import secrets
from typing import Any

from twisted.logger import Logger

from tau.bus import events
from tau.connect import frames
from tau.connect.calls import Calls, Identity, guest_identity
from tau.connect.hub import SignalHub, ringing_frame
from tau.connect.store import CallError
from tau.http.websocket import CLOSE_UNAUTHORIZED, FrameError, JsonSocket, TokenBucket

log = Logger()
SFU = "sfu"
#: trickle ICE per socket: a browser sends a few dozen candidates per peer connection
ICE_BURST, ICE_RATE = 100.0, 50.0


class SignalSocket(JsonSocket):
    scope = "calls"  # guests joining by link carry no token and no scope
    who: Identity
    call_id: str | None = None
    participant_id: str | None = None
    conn: str = ""

    @property
    def calls(self) -> Calls:
        return self.factory.calls

    @property
    def hub(self) -> SignalHub:
        return self.factory.hub

    async def _authenticate(self, request: Any) -> None:
        guest = (request.params.get("guest") or [None])[0]
        if guest and not request.headers.get("authorization") and not request.params.get("access_token"):
            self.user = await guest_identity(self.calls, guest)
            if self.user is None:
                self._close_after_open = (CLOSE_UNAUTHORIZED, "unauthorized")
            return
        await super()._authenticate(request)

    def translate_error(self, exc: BaseException) -> FrameError | None:
        if isinstance(exc, CallError):
            return FrameError(exc.code, exc.message)
        return None

    # -- life cycle -----------------------------------------------------------------------------
    async def opened(self) -> None:
        self.who = self.user if isinstance(self.user, Identity) else Identity.of_user(self.user)
        self.conn = secrets.token_hex(8)
        self._ice_bucket = TokenBucket(self.registry.clock, ICE_BURST, ICE_RATE)
        self.hub.register(self)
        self.send_json({"type": "hello", "user": self.who.address, "guest": self.who.user_id is None})
        for call in await self.calls.ringing(self.who):
            self.send_json(ringing_frame(call))

    async def closed(self) -> None:
        self.hub.unregister(self)
        if self.call_id is not None and self.participant_id is not None:
            call_id, pid, self.call_id = self.call_id, self.participant_id, None
            await self.calls.leave(call_id, pid, self.conn, explicit=False)

    def detach(self, call_id: str, reason: str) -> None:
        """Out of the room without a leave of our own: replaced by a newer session, removed, ended."""
        if self.call_id != call_id:
            return
        self.hub.exit(self)
        self.call_id = None
        self.send_json({"type": "left", "call_id": call_id, "reason": reason})

    def _room(self, frame: dict[str, Any]) -> str:
        call_id = frames.text_id(frame, "call_id")
        if call_id != self.call_id:
            raise FrameError("not_in_call", "join this call before sending frames for it")
        return call_id

    # -- joining --------------------------------------------------------------------------------
    async def frame_join(self, frame: dict[str, Any]) -> dict[str, Any]:
        call_id = frames.text_id(frame, "call_id")
        if self.call_id is not None and self.call_id != call_id:
            raise FrameError("already_in_call", "leave the current call first")
        result = await self.calls.join(self.who, call_id, self.conn)
        me, call = result["me"], result["call"]
        wanted = frame.get("participant_id")
        if wanted is not None and wanted != me["id"]:
            log.info("join asked for participant id {wanted}, has {pid}", wanted=str(wanted)[:64], pid=me["id"])
        self.call_id, self.participant_id = call_id, me["id"]
        self.hub.enter(self, call_id)
        out = {"type": "joined", "call_id": call_id, "participant_id": me["id"], "status": call["status"],
               "mode": call["mode"], "title": call["title"], "host": call["host"],
               "participants": result["participants"], "ice_servers": result["ice_servers"],
               "sfu": self.calls.media.status}
        if "ref" in frame:
            out["ref"] = frame["ref"]
        self.send_json(out)
        return out

    async def frame_accept(self, frame: dict[str, Any]) -> None:
        joined = await self.frame_join(frame)
        self.calls.bus.publish(events.SIGNAL_FRAME, {
            "call_id": joined["call_id"], "except": joined["participant_id"],
            "frame": {"type": "accepted", "call_id": joined["call_id"], "by": joined["participant_id"],
                      "user": None if self.who.user_id is None else self.who.address}})

    async def frame_decline(self, frame: dict[str, Any]) -> None:
        call_id = frames.text_id(frame, "call_id")
        if call_id == self.call_id:
            raise FrameError("already_in_call", "leave the call instead")
        await self.calls.decline(self.who, call_id)

    async def frame_leave(self, frame: dict[str, Any]) -> None:
        call_id = self._room(frame)
        pid = self.participant_id
        self.hub.exit(self)
        self.call_id = None
        self.send_json({"type": "left", "call_id": call_id, "reason": "leave"})
        assert pid is not None
        await self.calls.leave(call_id, pid, self.conn, explicit=True)

    # -- relay ----------------------------------------------------------------------------------
    def _relay(self, frame: dict[str, Any], call_id: str) -> None:
        to = frames.recipient(frame)
        if to in (self.participant_id, self.who.address.lower()):
            raise FrameError("invalid_request", "a frame to yourself")
        relayed = {**frame, "from": self.participant_id}
        if to == SFU:
            self.calls.media.handle(call_id, self.participant_id, relayed)
            return
        if "@" in to:  # a user address: every session of that user in this call (INTERFACE.md)
            if not self.hub.user_in_room(call_id, to):
                raise FrameError("unknown_participant", "that user is not in this call")
            relayed["from_user"] = None if self.who.user_id is None else self.who.address
            self.calls.bus.publish(events.SIGNAL_FRAME, {"call_id": call_id, "to_user": to, "frame": relayed})
            return
        if not self.hub.in_room(call_id, to):
            raise FrameError("unknown_participant", "no such participant in this call")
        self.calls.bus.publish(events.SIGNAL_FRAME, {"call_id": call_id, "to": to, "frame": relayed})

    def frame_offer(self, frame: dict[str, Any]) -> None:
        call_id = self._room(frame)
        frames.check_sdp(frame.get("sdp"))
        self._relay(frame, call_id)

    frame_answer = frame_offer

    def frame_ice(self, frame: dict[str, Any]) -> None:
        wait = self._ice_bucket.take()
        if wait:
            raise FrameError("rate_limited", "too many ICE candidates", retry_after=round(max(wait, 0.001), 3))
        call_id = self._room(frame)
        frames.check_candidate(frame.get("candidate"))
        self._relay(frame, call_id)

    # -- state ----------------------------------------------------------------------------------
    async def frame_mute(self, frame: dict[str, Any]) -> None:
        call_id = self._room(frame)
        changes = {f"{kind}_muted": value for kind in ("audio", "video")
                   if (value := frames.flag(frame, kind)) is not None}
        if not changes:
            raise FrameError("invalid_request", "mute needs audio and/or video (true or false)")
        assert self.participant_id is not None
        await self.calls.set_state(call_id, self.participant_id, changes)

    async def frame_hand(self, frame: dict[str, Any]) -> None:
        call_id = self._room(frame)
        raised = frames.flag(frame, "raised")
        if raised is None:
            raise FrameError("invalid_request", "hand needs raised: true or false")
        assert self.participant_id is not None
        await self.calls.set_state(call_id, self.participant_id, {"hand_raised": raised})
