"""``/ws/messages``: one device's real-time channel (push, acks, receipts, typing, presence).

Connect with ``?device_id=N`` (a device registered with ``PUT /api/keys``; 0, the default, is the
keyless device of bots that use plaintext conversations only). On open the server sends
``hello``, then the device's queue in order (everything not yet acknowledged), then ``synced``;
after that, new messages as they commit. Messages published while the queue is being replayed
are held back and deduplicated by id, so a reconnecting client resumes from its last ack
without gaps or duplicates (the queue holds exactly the unacknowledged messages). At most
``WINDOW`` replayed messages are in flight unacknowledged, so a large backlog cannot flood
memory. Client frames: ``ack {ids, ref?}`` (``acked {ref}`` once committed),
``send {ref, to|conversation, body|envelopes}``, ``receipt {kind, conversation, ids}``,
``typing {conversation, state}``, ``presence {status}``, ``ping``.
"""

from __future__ import annotations

import secrets
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from tau.http.websocket import FrameError, JsonSocket
from tau.messenger.domain import MessengerError, id_list, int_id
from tau.messenger.keys import LOW_PREKEYS, MAX_DEVICE_ID
from tau.messenger.messages import DeviceMismatch

log = Logger()
PAGE = 500
WINDOW = 1000


class MessagesSocket(JsonSocket):
    scope = "chat"
    device_id: int = 0
    conn_id: str = ""

    @property
    def messenger(self) -> Any:
        return self.factory.messenger

    @property
    def hub(self) -> Any:
        return self.factory.hub

    async def accept(self, request: Any) -> None:
        raw = (request.params.get("device_id") or [request.headers.get("x-tau-device", "0")])[0]
        try:
            device = int(raw)
        except ValueError:
            raise FrameError("invalid_device", "device_id must be an integer")
        if not 0 <= device <= MAX_DEVICE_ID:
            raise FrameError("invalid_device", "device_id out of range")
        if device and not await self.messenger.device_registered(self.user, device):
            raise FrameError("unknown_device", "register the device with PUT /api/keys first")
        self.device_id = device

    def translate_error(self, exc: BaseException) -> FrameError | None:
        if isinstance(exc, DeviceMismatch):
            return FrameError("device_mismatch", "the device lists are out of date", **exc.as_dict())
        if isinstance(exc, MessengerError):
            return FrameError(exc.code, exc.message)
        return None

    # -- life cycle -----------------------------------------------------------------------------
    async def opened(self) -> None:
        self.conn_id = secrets.token_hex(8)
        self._held: dict[str, dict[str, Any]] | None = {}  # live messages held back during replay
        self._unacked: set[str] = set()
        self._window_open: defer.Deferred[None] | None = None
        self._send_lock = defer.DeferredLock()
        self.hub.register(self)
        log.info("websocket open for {user} device {device}", user=self.user.address, device=self.device_id)
        self.send_json({"type": "hello", "user": self.user.address, "device_id": self.device_id})
        await self.messenger.presence.connected(self.user.address, self.conn_id)
        sent = await self._replay()
        held, self._held = self._held or {}, None
        for frame in held.values():
            self.send_json(frame)
        self.send_json({"type": "synced", "replayed": sent})
        if self.device_id:
            left = await self.messenger.prekeys_left(self.user, self.device_id)
            if left is not None and left < LOW_PREKEYS:
                self.send_json({"type": "prekeys_low", "device_id": self.device_id, "remaining": left})

    async def _replay(self) -> int:
        after, sent = 0, 0
        while getattr(self, "_open", False):
            page = await self.messenger.pending(self.user, self.device_id, after, PAGE)
            for item in page:
                if self._held is not None:
                    self._held.pop(item["id"], None)
                self._unacked.add(item["id"])
                if self.output_blocked:  # a backlog goes out at the pace the peer reads it
                    await self.drained()
                self.send_json({"type": "message", **item})
            sent += len(page)
            if len(page) < PAGE:
                return sent
            after = int(page[-1]["id"])
            while len(self._unacked) >= WINDOW and getattr(self, "_open", False):
                self._window_open = defer.Deferred()
                await self._window_open
        return sent

    def closed(self) -> Any:
        self.hub.unregister(self)
        log.info("websocket closed for {user} device {device}", user=self.user.address, device=self.device_id)
        if self._window_open is not None and not self._window_open.called:
            self._window_open.callback(None)
        return defer.ensureDeferred(self.messenger.presence.disconnected(self.user.address, self.conn_id))

    def push_message(self, frame: dict[str, Any]) -> None:
        """Called by the hub for each new message for this device."""
        if getattr(self, "_held", None) is not None:
            self._held[frame["id"]] = frame
        else:
            self.send_json(frame)

    # -- frames ---------------------------------------------------------------------------------
    async def frame_ack(self, frame: dict[str, Any]) -> None:
        ids = id_list(frame.get("ids"), "ids")
        for i in ids:
            self._unacked.discard(str(i))
        if self._window_open is not None and not self._window_open.called and len(self._unacked) < WINDOW // 2:
            self._window_open.callback(None)
        await self.messenger.ack(self.user, self.device_id, ids)
        if "ref" in frame:  # the client asked to know when the queue entries are gone for good
            self.send_json({"type": "acked", "ref": frame["ref"]})

    async def frame_send(self, frame: dict[str, Any]) -> None:
        # one send at a time per socket: server ids follow the order the client sent in
        await self._send_lock.acquire()
        try:
            result = await self.messenger.send(self.user, frame, device_id=self.device_id)
        finally:
            self._send_lock.release()
        out = {"type": "sent", **result}
        if "ref" in frame:
            out["ref"] = frame["ref"]
        self.send_json(out)

    async def frame_receipt(self, frame: dict[str, Any]) -> None:
        conv = int_id(frame.get("conversation"), "conversation")
        await self.messenger.mark(self.user, frame.get("kind"), conv, id_list(frame.get("ids"), "ids"))

    async def frame_typing(self, frame: dict[str, Any]) -> None:
        await self.messenger.typing(self.user, int_id(frame.get("conversation"), "conversation"), frame.get("state"))

    async def frame_presence(self, frame: dict[str, Any]) -> None:
        await self.messenger.set_status(self.user, frame.get("status"))

    async def frame_call_start(self, frame: dict[str, Any]) -> None:
        """Chat → call (issue 9): answered by the hook the flows install (``tau.flows.chat_call``)."""
        hook = self.messenger.frame_hooks.get("call.start")
        if hook is None:
            raise MessengerError(503, "calls_unavailable", "calls are not enabled")
        await hook(self, frame)
