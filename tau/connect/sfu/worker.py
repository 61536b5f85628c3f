"""SFU worker process: ``python -m tau.connect.sfu.worker``, spawned and supervised by the daemon.

Media never touches the daemon's reactor: this process runs aiortc on its own asyncio loop and
speaks the JSON-lines protocol of :mod:`tau.connect.sfu.protocol` on stdin/stdout. Topology:
each participant publishes once (one upstream peer connection, the ``publish`` op); for every
other participant the worker opens one downstream connection carrying that publisher's tracks
through :class:`aiortc.contrib.media.MediaRelay` (``stream`` = the publisher's id), so nobody is
ever renegotiated when someone joins or leaves: connections are only added or closed.
Forwarded frames are never decoded (:mod:`tau.connect.sfu.forward`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aioice import ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.sdp import SessionDescription, candidate_from_sdp

from tau.connect.sfu import forward
from tau.connect.sfu.protocol import encode

Emit = Callable[[dict[str, Any]], None]


@dataclass
class Peer:
    id: str
    publish: RTCPeerConnection | None = None
    tracks: list[Any] = field(default_factory=list)
    codecs: dict[str, str] = field(default_factory=dict)  # kind → mimeType the publisher sends
    subs: dict[str, RTCPeerConnection] = field(default_factory=dict)  # publisher id → downstream


@dataclass
class Room:
    id: str
    peers: dict[str, Peer] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _config() -> RTCConfiguration:
    # no STUN/TURN of our own: the SFU answers from its host addresses (aiortc's default would
    # reach out to a public STUN server on every connection)
    return RTCConfiguration(iceServers=[])


class Sfu:
    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.rooms: dict[str, Room] = {}
        self.relay = MediaRelay()
        self.keyframes = forward.KeyframeRelay()

    def room(self, room_id: str) -> Room:
        return self.rooms.setdefault(room_id, Room(room_id))

    async def handle(self, msg: dict[str, Any]) -> None:
        op, room_id = msg.get("op"), str(msg.get("room", ""))
        room = self.room(room_id)
        async with room.lock:
            try:
                if op == "publish":
                    await self.publish(room, str(msg["peer"]), str(msg["sdp"]))
                elif op == "answer":
                    await self.answered(room, str(msg["peer"]), str(msg["stream"]), str(msg["sdp"]))
                elif op == "ice":
                    await self.candidate(room, str(msg["peer"]), msg.get("stream"), msg.get("candidate"))
                elif op == "leave":
                    await self.leave(room, str(msg["peer"]))
                elif op == "close":
                    for peer_id in list(room.peers):
                        await self.leave(room, peer_id)
            except Exception as exc:  # one bad offer must not take the room (or the worker) down
                self.emit({"ev": "error", "room": room_id, "peer": msg.get("peer"), "stream": msg.get("stream"),
                           "message": f"{exc.__class__.__name__}: {exc}"[:300]})
        if not room.peers and room_id in self.rooms and not room.lock.locked():
            del self.rooms[room_id]

    async def publish(self, room: Room, peer_id: str, sdp: str) -> None:
        """A participant's upstream offer. A second publish (renegotiation after a restart or a
        reconnect) starts the participant over: everything it had here is closed first."""
        if peer_id in room.peers:
            await self.leave(room, peer_id, tell=False)
        peer = room.peers[peer_id] = Peer(peer_id)
        pc = RTCPeerConnection(_config())
        peer.publish = pc
        pc.on("track", peer.tracks.append)
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        for media in SessionDescription.parse(pc.localDescription.sdp).media:
            if media.rtp.codecs and media.kind not in peer.codecs:
                peer.codecs[media.kind] = media.rtp.codecs[0].mimeType
        self.emit({"ev": "answer", "room": room.id, "peer": peer_id, "sdp": pc.localDescription.sdp})
        for other in list(room.peers.values()):
            if other is not peer:
                await self.subscribe(room, other, peer)  # they get the newcomer's media
                await self.subscribe(room, peer, other)  # the newcomer gets theirs

    async def subscribe(self, room: Room, sub: Peer, pub: Peer) -> None:
        if not pub.tracks or pub.id in sub.subs or pub.publish is None:
            return
        pc = RTCPeerConnection(_config())
        sub.subs[pub.id] = pc
        for track in pub.tracks:
            sender = pc.addTrack(self.relay.subscribe(track))
            self.keyframes.hook(sender, pub.publish)
            wanted = pub.codecs.get(track.kind, "").lower()
            codecs = [c for c in RTCRtpSender.getCapabilities(track.kind).codecs
                      if c.mimeType.lower() in (wanted, f"{track.kind}/rtx")]
            for transceiver in pc.getTransceivers():
                if transceiver.sender is sender and wanted:
                    transceiver.setCodecPreferences(codecs)
        await pc.setLocalDescription(await pc.createOffer())
        self.emit({"ev": "offer", "room": room.id, "peer": sub.id, "stream": pub.id, "sdp": pc.localDescription.sdp})

    async def answered(self, room: Room, peer_id: str, stream: str, sdp: str) -> None:
        peer = room.peers.get(peer_id)
        pc = peer.subs.get(stream) if peer else None
        if pc is None:
            raise LookupError(f"no downstream {stream} for {peer_id}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        publisher = room.peers.get(stream)
        if publisher is not None:  # a new viewer can only start decoding at a keyframe
            self.keyframes.request(publisher.publish)

    async def candidate(self, room: Room, peer_id: str, stream: Any, init: Any) -> None:
        peer = room.peers.get(peer_id)
        if peer is None or not isinstance(init, dict) or not init.get("candidate"):
            return  # end-of-candidates, or a candidate for a connection already gone
        pc = peer.subs.get(str(stream)) if stream else peer.publish
        if pc is None:
            return
        cand = candidate_from_sdp(str(init["candidate"]).split(":", 1)[1])
        cand.sdpMid, cand.sdpMLineIndex = init.get("sdpMid"), init.get("sdpMLineIndex")
        await pc.addIceCandidate(cand)

    async def leave(self, room: Room, peer_id: str, tell: bool = True) -> None:
        peer = room.peers.pop(peer_id, None)
        if peer is None:
            return
        closing = list(peer.subs.values())
        for other in room.peers.values():
            pc = other.subs.pop(peer_id, None)
            if pc is not None:
                closing.append(pc)
                if tell:
                    self.emit({"ev": "unpublished", "room": room.id, "peer": other.id, "stream": peer_id})
        if peer.publish is not None:
            self.keyframes.forget(peer.publish)
            closing.append(peer.publish)
        await asyncio.gather(*(pc.close() for pc in closing), return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        peers = sum(len(r.peers) for r in self.rooms.values())
        streams = sum(len(p.subs) for r in self.rooms.values() for p in r.peers.values())
        cpu = time.process_time()
        return {"ev": "stats", "rooms": len(self.rooms), "peers": peers, "downstreams": streams, "cpu_seconds": cpu}


def _host_addresses() -> None:
    """``TAU_SFU_HOST_ADDRESSES`` (comma list) pins the addresses offered to clients; with none
    configured and no interface but loopback, offer 127.0.0.1 rather than nothing."""
    pinned = [a.strip() for a in os.environ.get("TAU_SFU_HOST_ADDRESSES", "").split(",") if a.strip()]
    original = ice.get_host_addresses

    def addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if pinned:
            return pinned
        found = original(use_ipv4, use_ipv6)
        return found or (["127.0.0.1"] if use_ipv4 else [])

    ice.get_host_addresses = addresses


async def main() -> None:
    # stdout carries the protocol only: anything a library prints goes to stderr instead
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    loop = asyncio.get_running_loop()

    def emit(message: dict[str, Any]) -> None:
        out.write(encode(message))

    passthrough = forward.install()
    _host_addresses()
    sfu = Sfu(emit)
    reader = asyncio.StreamReader(limit=2**21)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit({"ev": "ready", "pid": os.getpid(), "passthrough": passthrough})
    tasks: set[asyncio.Task[None]] = set()
    last_stats = time.monotonic()
    while True:
        line = await reader.readline()
        if not line:
            break
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if not isinstance(msg, dict):
            continue
        if msg.get("op") == "quit":
            break
        if msg.get("op") == "stats" or time.monotonic() - last_stats > 5:
            last_stats = time.monotonic()
            emit(sfu.stats())
        task = loop.create_task(sfu.handle(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    for room in list(sfu.rooms.values()):
        for peer_id in list(room.peers):
            await sfu.leave(room, peer_id, tell=False)


if __name__ == "__main__":
    asyncio.run(main())
