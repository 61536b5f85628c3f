"""A Python call client: ``/ws/signal`` through :class:`tau.client.ws.Socket` plus aiortc media.

For bots, tests and benchmarks. It follows the same rules as the web page (``static/call.js``):
in ``p2p`` rooms the participant with the smaller id offers (and, here, opens a data channel),
tagging the offer with a negotiation id (``nid``) the answer echoes, so an answer that was on its
way to an earlier session of the same participant is recognised and dropped;
in ``sfu`` rooms it publishes once to ``"sfu"`` and answers the media server's offers, one per
other participant. Received video is counted per sender, which is what acceptance tests check.
aiortc is imported on first use, so importing this module costs nothing in the daemon.
"""

from __future__ import annotations

import asyncio
import fractions
import secrets
import time
from collections import Counter
from typing import Any

from tau.client.ws import Socket

SFU = "sfu"


def synthetic_video(width: int = 320, height: int = 240, fps: int = 15) -> Any:
    """A video track of moving grey levels (no numpy, no camera): real frames for a real encoder."""
    import av
    from aiortc import MediaStreamTrack

    class Synthetic(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self._n, self._start = 0, None

        async def recv(self) -> Any:
            if self._start is None:
                self._start = time.monotonic()
            self._n += 1
            delay = self._start + self._n / fps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = av.VideoFrame(width, height, "yuv420p")
            level = (self._n * 7) % 200 + 20
            for i, plane in enumerate(frame.planes):
                plane.update(bytes([level if i == 0 else 128]) * plane.buffer_size)
            frame.pts, frame.time_base = self._n * (90000 // fps), fractions.Fraction(1, 90000)
            return frame

    return Synthetic()


class CallClient:
    def __init__(self, base_url: str, token: str | None = None, guest: str | None = None,
                 video: bool = True, size: tuple[int, int] = (320, 240)) -> None:
        self.base_url, self.token, self.guest = base_url, token, guest
        self.video, self.size = video, size
        self.sock: Socket | None = None
        self.call_id: str | None = None
        self.me: str | None = None
        self.mode = "p2p"
        self.ice_servers: list[dict[str, Any]] = []
        self.participants: list[dict[str, Any]] = []
        self.peers: dict[str, Any] = {}  # p2p: participant id → RTCPeerConnection
        self.publish_pc: Any = None
        self.subs: dict[str, Any] = {}  # sfu: publisher id → RTCPeerConnection
        self.frames: Counter[str] = Counter()  # sender's participant id → video frames received
        self.messages: list[str] = []  # data channel messages received
        self.channels: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []  # every frame that was not handled silently
        self.renegotiations = 0
        self._sessions: dict[str, str | None] = {}
        self._offers: dict[str, str] = {}  # participant id → negotiation id of our pending offer
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._joined: asyncio.Future[dict[str, Any]] | None = None

    # -- signaling --------------------------------------------------------------------------------
    async def connect(self) -> "CallClient":
        params = {"guest": self.guest} if self.guest else None
        self.sock = await Socket.connect(self.base_url, "/ws/signal", self.token, params)
        hello = await self.sock.recv_type("hello")
        self.events.append(hello)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def join(self, call_id: str, timeout: float = 10.0) -> dict[str, Any]:
        assert self.sock is not None
        self.call_id = call_id
        self._joined = asyncio.get_running_loop().create_future()
        self.sock.send({"type": "join", "call_id": call_id})
        return await asyncio.wait_for(self._joined, timeout)

    async def accept(self, call_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Answer a ``ringing`` call: join it, and the room hears ``accepted``."""
        assert self.sock is not None
        self._joined = asyncio.get_running_loop().create_future()
        self.sock.send({"type": "accept", "call_id": call_id})
        return await asyncio.wait_for(self._joined, timeout)

    def send(self, frame: dict[str, Any]) -> None:
        assert self.sock is not None
        self.sock.send(frame)

    async def _read(self) -> None:
        assert self.sock is not None
        try:
            while True:
                frame = await self.sock.recv()
                try:
                    await self._on_frame(frame)
                except Exception as exc:  # keep reading: one failed negotiation is reported, not fatal
                    self.events.append({"type": "client_error", "error": repr(exc)})
        except Exception:
            return

    async def _on_frame(self, f: dict[str, Any]) -> None:
        kind = f.get("type")
        if kind == "joined":
            self.call_id, self.me, self.mode = f["call_id"], f["participant_id"], f["mode"]
            self.ice_servers = f["ice_servers"]
            self.sfu_available = f.get("sfu") == "ok"
            self._participants(f["participants"])
            if self._joined and not self._joined.done():
                self._joined.set_result(f)
            if self.use_sfu:
                await self.publish()
        elif kind == "participants":
            self._participants(f["participants"])
        elif kind == "offer" and f.get("from") == SFU:
            await self._sfu_offer(f)
        elif kind == "answer" and f.get("from") == SFU:
            if self.publish_pc is not None:
                await self.publish_pc.setRemoteDescription(self._description(f["sdp"], "answer"))
        elif kind == "offer":
            self._drop_peer(f["from"])  # offers only ever start a connection: a new one each time
            pc = self._mesh_pc(f["from"])
            await pc.setRemoteDescription(self._description(f["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            self.send({"type": "answer", "call_id": self.call_id, "to": f["from"], "sdp": pc.localDescription.sdp,
                       "nid": f.get("nid")})
        elif kind == "answer" and f.get("from") in self.peers:
            # an answer meant for an earlier session of ours (we reconnected meanwhile) is not ours
            if f.get("nid") == self._offers.get(f["from"]):
                await self.peers[f["from"]].setRemoteDescription(self._description(f["sdp"], "answer"))
        elif kind == "renegotiate":
            self.renegotiations += 1
            self.events.append(f)
            await self.publish()
        elif kind == "stream_ended":
            pc = self.subs.pop(f.get("stream"), None)
            if pc is not None:
                await pc.close()
        elif kind != "ice":  # aiortc gathers before answering: trickled candidates are not needed
            self.events.append(f)
            if kind == "error" and self._joined and not self._joined.done():
                self._joined.set_exception(RuntimeError(f"{f.get('error')}: {f.get('message')}"))

    @property
    def use_sfu(self) -> bool:
        return self.mode == "sfu" and getattr(self, "sfu_available", False)

    def _participants(self, people: list[dict[str, Any]]) -> None:
        self.participants = people
        if self.use_sfu or self.me is None:
            return
        current = {p["id"]: p.get("session") for p in people if p["id"] != self.me}
        for pid in list(self.peers):  # gone, or back on a new session: that connection is dead
            if pid not in current or self._sessions.get(pid) != current[pid]:
                self._drop_peer(pid)
        for pid, session in current.items():
            self._sessions[pid] = session
            if pid not in self.peers and self.me < pid:
                self._mesh_pc(pid)
                self._spawn(self._mesh_offer(pid))

    def _drop_peer(self, pid: str) -> None:
        pc = self.peers.pop(pid, None)
        self.channels.pop(pid, None)
        if pc is not None:
            self._spawn(pc.close())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- media ------------------------------------------------------------------------------------
    @staticmethod
    def _description(sdp: str, kind: str) -> Any:
        from aiortc import RTCSessionDescription

        return RTCSessionDescription(sdp=sdp, type=kind)

    def _new_pc(self) -> Any:
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

        servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                   for s in self.ice_servers if not any(u.startswith("turns:") for u in s["urls"])]
        return RTCPeerConnection(RTCConfiguration(iceServers=servers))

    def _count(self, sender: str, track: Any) -> None:
        if track.kind != "video":
            return

        async def consume() -> None:
            while True:
                try:
                    await track.recv()
                except Exception:
                    return
                self.frames[sender] += 1

        self._spawn(consume())

    def _mesh_pc(self, pid: str) -> Any:
        if pid in self.peers:
            return self.peers[pid]
        pc = self.peers[pid] = self._new_pc()
        if self.video:
            pc.addTrack(synthetic_video(*self.size))
        else:
            pc.addTransceiver("video", direction="recvonly")
        pc.on("track", lambda track: self._count(pid, track))

        def on_channel(channel: Any) -> None:
            self.channels[pid] = channel
            channel.on("message", self.messages.append)

        pc.on("datachannel", on_channel)
        return pc

    async def _mesh_offer(self, pid: str) -> None:
        pc = self._mesh_pc(pid)
        channel = pc.createDataChannel("chat")
        self.channels[pid] = channel
        channel.on("message", self.messages.append)
        await pc.setLocalDescription(await pc.createOffer())
        self._offers[pid] = nid = secrets.token_hex(6)
        self.send({"type": "offer", "call_id": self.call_id, "to": pid, "sdp": pc.localDescription.sdp, "nid": nid})

    async def publish(self) -> None:
        """(Re)publish upstream to the SFU; everything downstream is rebuilt by the server."""
        await self._close_sfu()
        pc = self.publish_pc = self._new_pc()
        if self.video:
            pc.addTransceiver(synthetic_video(*self.size), direction="sendonly")
        else:
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        self.send({"type": "offer", "call_id": self.call_id, "to": SFU, "sdp": pc.localDescription.sdp})

    async def _sfu_offer(self, f: dict[str, Any]) -> None:
        stream = f["stream"]
        old = self.subs.pop(stream, None)
        if old is not None:
            await old.close()
        pc = self.subs[stream] = self._new_pc()
        pc.on("track", lambda track: self._count(stream, track))
        await pc.setRemoteDescription(self._description(f["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        self.send({"type": "answer", "call_id": self.call_id, "to": SFU, "stream": stream,
                   "sdp": pc.localDescription.sdp})

    async def _close_sfu(self) -> None:
        pcs = [self.publish_pc, *self.subs.values()] if self.publish_pc else list(self.subs.values())
        self.publish_pc, self.subs = None, {}
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)

    # -- waiting and closing ----------------------------------------------------------------------
    async def wait_frames(self, senders: list[str], count: int, timeout: float = 20.0) -> None:
        """Until ``count`` more video frames arrived from each sender (counted from now)."""
        base = {s: self.frames[s] for s in senders}
        deadline = time.monotonic() + timeout
        while any(self.frames[s] - base[s] < count for s in senders):
            if time.monotonic() > deadline:
                got = {s: self.frames[s] - base[s] for s in senders}
                raise TimeoutError(f"{self.me}: frames after {timeout}s: {got}; events: {self.events[-5:]}")
            await asyncio.sleep(0.05)

    async def wait_event(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("type") == kind:
                    self.events.remove(event)
                    return event
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no {kind} frame; got {[e.get('type') for e in self.events]}")

    async def close(self) -> None:
        for pc in list(self.peers.values()):
            await pc.close()
        self.peers.clear()
        await self._close_sfu()
        for task in list(self._tasks):
            task.cancel()
        if self.sock is not None:
            await self.sock.close()
        if self._reader is not None:
            self._reader.cancel()
