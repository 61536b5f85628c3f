"""Issue 20 against a real ``twistd -n tau`` (SQLite and PostgreSQL): signaling addressed to users,
and the WebSocket layer's manners — permessage-deflate, back-pressure (1013), abrupt closes.

The aiortc peers here negotiate by hand, with ``to`` set to the other user's address, to show
that a client needing no participant ids gets its offer and answer relayed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
import zlib
from typing import Any

import pytest

from tau.client.ws import CLOSE, TEXT, Socket, encode_frame
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e
USERS = ("alice", "bob")


@pytest.fixture(scope="module", params=engines())
def daemon(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"ws-hygiene-{request.param}")
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("http",)).init()
    for user in USERS:
        d.add_user(f"{user}@example.test")
    d.start()
    d.tokens = {u: d.token(f"{u}@example.test") for u in USERS}
    yield d
    d.stop()


def api(d: TauDaemon, who: str, method: str, path: str, body=None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    status, _, raw = d.http(method, path, data, {"Content-Type": "application/json"} if data else {},
                            token=d.tokens[who])
    return status, json.loads(raw) if raw else {}


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# -- raw sockets: the handshake's headers and a reader that does not read --------------------------
def raw_open(d: TauDaemon, path: str, token: str, extensions: str | None = None,
             rcvbuf: int | None = None) -> tuple[socket.socket, dict[str, str], bytes]:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(15)
    sock.connect(("127.0.0.1", d.ports["http"]))
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path}?access_token={token} HTTP/1.1", f"Host: 127.0.0.1:{d.ports['http']}",
             "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *header_lines = head.decode("latin-1").split("\r\n")
    assert status.startswith("HTTP/1.1 101"), head
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return sock, headers, rest


def read_frames(sock: socket.socket, buffer: bytearray, until_close: bool = False, count: int = 1):
    """Server frames as (rsv1, opcode, payload), up to ``count`` or the close frame; ``buffer``
    holds what was read past them (for the next call)."""
    frames = []
    while True:
        while len(buffer) >= 2:
            b1, b2 = buffer[0], buffer[1]
            n, at = b2 & 0x7F, 2
            if n == 126:
                if len(buffer) < 4:
                    break
                n, at = struct.unpack(">H", buffer[2:4])[0], 4
            elif n == 127:
                if len(buffer) < 10:
                    break
                n, at = struct.unpack(">Q", buffer[2:10])[0], 10
            if len(buffer) < at + n:
                break
            frames.append((bool(b1 & 0x40), b1 & 0x0F, bytes(buffer[at:at + n])))
            del buffer[:at + n]
            if frames[-1][1] == CLOSE or (not until_close and len(frames) >= count):
                return frames
        chunk = sock.recv(65536)
        if not chunk:
            return frames
        buffer += chunk


def inflate(payload: bytes, inflater: Any = None) -> bytes:
    """RFC 7692 section 7.2.2: append 00 00 ff ff and inflate raw (one inflater per socket: the
    server keeps its compression context from message to message)."""
    return (inflater or zlib.decompressobj(-15)).decompress(payload + b"\x00\x00\xff\xff")


# -- tests -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/ws/messages", "/ws/signal"])
def test_permessage_deflate_is_negotiated_and_frames_arrive_compressed(daemon, path):
    sock, headers, raw = raw_open(daemon, path, daemon.tokens["alice"],
                                  "permessage-deflate; client_max_window_bits")
    rest = bytearray(raw)
    try:
        assert headers.get("sec-websocket-extensions", "").startswith("permessage-deflate"), headers
        [(compressed, opcode, payload)] = read_frames(sock, rest)
        inflater = zlib.decompressobj(-15)
        assert compressed and opcode == TEXT  # RSV1: this frame went through deflate
        assert json.loads(inflate(payload, inflater))["type"] == "hello"
        assert "client_max_window_bits=11" in headers["sec-websocket-extensions"]
        # a compressed frame from the client (RSV1, raw deflate without the 00 00 ff ff tail)
        deflater = zlib.compressobj(wbits=-11)
        body = deflater.compress(b'{"type": "ping", "ref": "z"}') + deflater.flush(zlib.Z_SYNC_FLUSH)
        frame = bytearray(encode_frame(TEXT, body[:-4]))
        frame[0] |= 0x40
        sock.sendall(bytes(frame))
        answers = []
        while not answers or answers[-1]["type"] != "pong":
            [(compressed, _, payload)] = read_frames(sock, rest)
            assert compressed
            answers.append(json.loads(inflate(payload, inflater)))
        assert answers[-1] == {"type": "pong", "ref": "z"}
    finally:
        sock.close()
    plain, headers, raw = raw_open(daemon, path, daemon.tokens["alice"])  # not offered: not used
    try:
        assert "sec-websocket-extensions" not in headers
        [(compressed, _, payload)] = read_frames(plain, bytearray(raw))
        assert not compressed and json.loads(payload)["type"] == "hello"
    finally:
        plain.close()


def test_a_consumer_that_does_not_read_is_closed_with_1013(daemon):
    # bob's socket reads nothing while alice posts about 7.5 MB to him
    assert api(daemon, "alice", "POST", "/api/messages", {"to": "bob@example.test", "body": "hi"})[0] == 201
    slow, _, raw = raw_open(daemon, "/ws/messages", daemon.tokens["bob"], rcvbuf=4096)
    try:
        blob = base64.b64encode(os.urandom(40 * 1024)).decode()
        for n in range(140):
            status, answer = api(daemon, "alice", "POST", "/api/messages", {"to": "bob@example.test",
                                                                          "body": f"{n} {blob}"})
            assert status == 201, answer
        frames = read_frames(slow, bytearray(raw), until_close=True)
        assert frames[-1][1] == CLOSE, [f[1] for f in frames[-3:]]
        assert struct.unpack(">H", frames[-1][2][:2])[0] == 1013
        delivered = sum(1 for _, op, _ in frames if op == TEXT)
        assert delivered < 140  # closed long before everything was pushed
    finally:
        slow.close()
    # the messages wait in bob's queue for his next connection: nothing was lost
    async def reconnect() -> int:
        bob = await Socket.connect(daemon.url, "/ws/messages", daemon.tokens["bob"])
        return int((await bob.recv_type("synced", timeout=30))["replayed"])

    assert run(reconnect()) >= 140


def _rst(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_abrupt_closes_leave_no_critical_log(daemon):
    status, call = api(daemon, "alice", "POST", "/api/calls", {"title": "t", "participants": ["bob@example.test"]})
    assert status == 201
    frames = [{"type": "send", "to": "bob@example.test", "body": "x", "ref": "r"}, {"type": "ping"},
              {"type": "typing", "conversation": 1, "state": "started"}, {"type": "bogus"}, "not json",
              {"type": "join", "call_id": call["id"]}, {"type": "mute", "call_id": call["id"], "audio": True},
              {"type": "presence", "status": "busy"}]
    for round_ in range(30):
        path = ("/ws/messages", "/ws/signal")[round_ % 2]
        sock, _, _ = raw_open(daemon, path, daemon.tokens[USERS[round_ % 2]])
        for frame in frames:
            payload = frame if isinstance(frame, str) else json.dumps(frame)
            sock.sendall(encode_frame(TEXT, payload.encode()))
        if round_ % 3 == 0:  # a close frame, then gone before the server's answers are out
            sock.sendall(encode_frame(CLOSE, struct.pack(">H", 1000)))
        if round_ % 3 == 1:  # half a frame, then gone
            sock.sendall(encode_frame(TEXT, b'{"type": "ping"}')[:5])
        if round_ % 3 == 2:  # too big: the server starts closing (1009) while answers are on their way
            sock.sendall(encode_frame(TEXT, b" " * (2 * 1024 * 1024)))
            time.sleep(0.3)
        _rst(sock)
    # the daemon still answers, and said nothing critical about any of it
    assert api(daemon, "alice", "GET", "/api/presence")[0] == 200
    run(asyncio.sleep(1.5))
    log = daemon.log.read_text()
    assert "Attempt to send on a closed protocol" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert not [e for e in lines if e.get("level") in ("critical", "error")], \
        [e.get("msg") for e in lines if e.get("level") in ("critical", "error")][:5]


def test_aiortc_data_channel_negotiated_with_frames_addressed_to_users(daemon):
    aiortc = pytest.importorskip("aiortc")
    status, call = api(daemon, "alice", "POST", "/api/calls", {"title": "1:1", "participants": ["bob@example.test"]})
    assert status == 201

    async def scenario() -> tuple[str, str]:
        alice = await Socket.connect(daemon.url, "/ws/signal", daemon.tokens["alice"])
        bob = await Socket.connect(daemon.url, "/ws/signal", daemon.tokens["bob"])
        alice.send({"type": "join", "call_id": call["id"]})
        me_alice = (await alice.recv_type("joined"))["participant_id"]
        bob.send({"type": "join", "call_id": call["id"]})
        me_bob = (await bob.recv_type("joined"))["participant_id"]
        # every join reaches the room as a participants frame
        roster = await alice.recv_type("participants")
        while len(roster["participants"]) < 2:
            roster = await alice.recv_type("participants")
        assert {p["id"] for p in roster["participants"]} == {me_alice, me_bob}

        caller, callee = aiortc.RTCPeerConnection(), aiortc.RTCPeerConnection()
        got: dict[str, asyncio.Future[str]] = {"bob": asyncio.get_running_loop().create_future(),
                                               "alice": asyncio.get_running_loop().create_future()}
        channel = caller.createDataChannel("chat")
        channel.on("open", lambda: channel.send("hello bob"))
        channel.on("message", lambda m: got["alice"].done() or got["alice"].set_result(m))

        @callee.on("datachannel")
        def on_channel(ch):
            ch.on("message", lambda m: (got["bob"].done() or got["bob"].set_result(m), ch.send("hello alice")))

        await caller.setLocalDescription(await caller.createOffer())  # aiortc gathers before it returns
        alice.send({"type": "offer", "call_id": call["id"], "to": "bob@example.test",
                    "sdp": caller.localDescription.sdp})
        offer = await bob.recv_type("offer")
        assert offer["from"] == me_alice and offer["from_user"] == "alice@example.test"
        await callee.setRemoteDescription(aiortc.RTCSessionDescription(offer["sdp"], "offer"))
        await callee.setLocalDescription(await callee.createAnswer())
        bob.send({"type": "answer", "call_id": call["id"], "to": "Alice@Example.test",
                  "sdp": callee.localDescription.sdp})
        answer = await alice.recv_type("answer")
        assert answer["from"] == me_bob
        await caller.setRemoteDescription(aiortc.RTCSessionDescription(answer["sdp"], "answer"))
        results = await asyncio.wait_for(asyncio.gather(got["bob"], got["alice"]), 30)
        # a user who is not in the room is refused; the socket stays
        alice.send({"type": "offer", "call_id": call["id"], "to": "nobody@example.test",
                    "sdp": caller.localDescription.sdp})
        assert (await alice.recv_type("error"))["error"] == "unknown_participant"
        bob.send({"type": "leave", "call_id": call["id"]})
        left = await alice.recv_type("participants")
        assert [p["id"] for p in left["participants"]] == [me_alice]
        for pc in (caller, callee):
            await pc.close()
        for s in (alice, bob):
            await s.close()
        return results[0], results[1]

    assert run(scenario()) == ("hello bob", "hello alice")


def test_frames_of_one_socket_are_handled_in_the_order_sent(daemon):
    """Mute and hand frames sent back to back reach the room in order (each waits on the database;
    on PostgreSQL's pool they used to overtake each other)."""
    status, call = api(daemon, "alice", "POST", "/api/calls", {"title": "o", "participants": ["bob@example.test"]})
    assert status == 201

    async def scenario() -> tuple[list, list]:
        alice = await Socket.connect(daemon.url, "/ws/signal", daemon.tokens["alice"])
        bob = await Socket.connect(daemon.url, "/ws/signal", daemon.tokens["bob"])
        for s in (alice, bob):
            s.send({"type": "join", "call_id": call["id"]})
            await s.recv_type("joined")
        sent = [(n % 2 == 0, n % 3 == 0) for n in range(40)]
        for audio, hand in sent:
            bob.send({"type": "mute", "call_id": call["id"], "audio": audio})
            bob.send({"type": "hand", "call_id": call["id"], "raised": hand})
        seen = []
        while len(seen) < 2 * len(sent):
            state = await alice.recv_type("state")
            seen.append(state.get("audio_muted", state.get("hand_raised")))
        for s in (alice, bob):
            await s.close()
        return [(seen[i], seen[i + 1]) for i in range(0, len(seen), 2)], sent

    seen, sent = run(scenario())
    assert seen == sent
