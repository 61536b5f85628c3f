"""TauConnect benchmarks (issue 8, Performance). Not a test: run by hand.

``signaling``: a throwaway daemon of this checkout, 500 ``/ws/signal`` sockets in 100 rooms (5 users,
each in every room), every participant trickling an ICE candidate to the next one in its room
every ``--interval`` seconds; the relay latency (send → receive, one clock) is reported as
p50/p99/max. Target: p99 < 20 ms.

``sfu``: one SFU worker process (``python -m tau.connect.sfu.worker``, pinned to CPU 0 when there
are two) forwarding one publisher's 640x360 VP8 stream (30 fps, pre-encoded so the publisher costs
nothing) to K subscribers, K growing until fewer than 95 % of the frames arrive; the worker's CPU
is read from /proc. The clients run in this process (pinned to CPU 1) and do not decode.

    .venv/bin/python tests/bench/bench_connect.py signaling [--seconds 20] [--interval 0.5]
    .venv/bin/python tests/bench/bench_connect.py sfu [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: tests.support

from tau.client.ws import Socket  # noqa: E402
from tests.support.daemon import TauDaemon  # noqa: E402

USERS = [f"u{i}@example.test" for i in range(5)]


# -- signaling --------------------------------------------------------------------------------------
async def signaling(d: TauDaemon, tokens: dict[str, str], rooms: int, seconds: float, interval: float) -> None:
    calls = []
    for _ in range(rooms):
        body = json.dumps({"title": "bench", "participants": USERS[1:], "mode": "p2p"}).encode()
        status, _, raw = d.http("POST", "/api/calls", body, {"Content-Type": "application/json"},
                                token=tokens[USERS[0]])
        assert status == 201, raw
        calls.append(json.loads(raw)["id"])
    latencies: list[float] = []
    members: list[tuple[Socket, str, str]] = []  # socket, call id, participant id

    async def join(user: str, call_id: str) -> None:
        sock = await Socket.connect(d.url, "/ws/signal", tokens[user])
        await sock.recv_type("hello")
        sock.send({"type": "join", "call_id": call_id})
        members.append((sock, call_id, (await sock.recv_type("joined", 30))["participant_id"]))

    started = time.perf_counter()
    for i in range(0, len(calls), 10):
        await asyncio.gather(*(join(u, c) for c in calls[i:i + 10] for u in USERS))
    print(f"{len(members)} participants joined {rooms} rooms in {time.perf_counter() - started:.1f} s")
    by_room: dict[str, list[str]] = {}
    for _, call_id, pid in members:
        by_room.setdefault(call_id, []).append(pid)
    stop = time.perf_counter() + seconds
    candidate = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host", "sdpMid": "0",
                 "sdpMLineIndex": 0}

    async def reader(sock: Socket) -> None:
        while True:
            try:
                frame = await sock.recv()
            except Exception:
                return
            if frame.get("type") == "ice" and "t" in frame:
                latencies.append(time.perf_counter() - frame["t"])

    async def sender(sock: Socket, call_id: str, pid: str, offset: float) -> None:
        room = by_room[call_id]
        to = room[(room.index(pid) + 1) % len(room)]
        await asyncio.sleep(offset)
        while time.perf_counter() < stop:
            sock.send({"type": "ice", "call_id": call_id, "to": to, "candidate": candidate, "t": time.perf_counter()})
            await asyncio.sleep(interval)

    readers = [asyncio.ensure_future(reader(s)) for s, _, _ in members]
    await asyncio.gather(*(sender(s, c, p, interval * i / len(members)) for i, (s, c, p) in enumerate(members)))
    await asyncio.sleep(1)
    for r in readers:
        r.cancel()
    ms = sorted(x * 1000 for x in latencies)
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    print(f"relayed {len(ms)} frames ({len(ms) / seconds:.0f}/s): p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, "
          f"max {ms[-1]:.2f} ms, mean {statistics.mean(ms):.2f} ms")
    await asyncio.gather(*(s.close(timeout=1) for s, _, _ in members), return_exceptions=True)


def run_signaling(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        env = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}
        d = TauDaemon(Path(folder), database_url=args.database_url, listeners=("http",), env=env).init()
        for user in USERS:
            d.add_user(user)
        d.start()
        try:
            tokens = {u: d.token(u) for u in USERS}
            asyncio.run(signaling(d, tokens, args.rooms, args.seconds, args.interval))
        finally:
            d.stop()


# -- SFU --------------------------------------------------------------------------------------------
def encoded_stream(width: int = 640, height: int = 360, fps: int = 30, seconds: int = 4) -> list[Any]:
    """VP8 packets of a moving pattern, a keyframe every second (what a browser sends, roughly)."""
    import av

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt, codec.bit_rate = width, height, "yuv420p", 800_000
    codec.time_base, codec.gop_size = fractions.Fraction(1, fps), fps
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    packets = []
    for n in range(fps * seconds):
        frame = av.VideoFrame(width, height, "yuv420p")
        row = bytes((x + n * 4) % 256 for x in range(width))
        frame.planes[0].update(row * height)
        frame.planes[1].update(bytes([(n * 3) % 256]) * frame.planes[1].buffer_size)
        frame.planes[2].update(bytes([128]) * frame.planes[2].buffer_size)
        frame.pts = n
        packets += [bytes(p) for p in codec.encode(frame)]
    return packets


async def sfu_round(subscribers: int, seconds: float, packets: list[bytes]) -> dict[str, float]:
    import av
    from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from tau.connect.sfu.protocol import encode

    class Replay(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.n, self.start = 0, None

        async def recv(self) -> Any:
            self.start = self.start or time.monotonic()
            self.n += 1
            await asyncio.sleep(max(0.0, self.start + self.n / 30 - time.monotonic()))
            packet = av.Packet(packets[self.n % len(packets)])
            packet.pts, packet.time_base = self.n * 3000, fractions.Fraction(1, 90000)
            return packet

    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tau.connect.sfu.worker",
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(proc.pid, {0})
    assert proc.stdout is not None and proc.stdin is not None
    assert json.loads(await proc.stdout.readline())["ev"] == "ready"
    pcs: dict[str, Any] = {}
    received: dict[str, int] = {}
    config = RTCConfiguration(iceServers=[])
    source = Replay()

    def send(msg: dict[str, Any]) -> None:
        proc.stdin.write(encode(msg))

    async def events() -> None:
        while line := await proc.stdout.readline():
            ev = json.loads(line)
            if ev["ev"] == "answer":
                await pcs[ev["peer"]].setRemoteDescription(RTCSessionDescription(ev["sdp"], "answer"))
            elif ev["ev"] == "offer":
                pc = RTCPeerConnection(config)
                pcs[ev["peer"] + "/down"] = pc
                peer = ev["peer"]

                def on_track(track: Any, peer: str = peer) -> None:
                    async def count() -> None:
                        while True:
                            try:
                                await track.recv()
                            except Exception:
                                return
                            received[peer] = received.get(peer, 0) + 1
                    asyncio.ensure_future(count())

                pc.on("track", on_track)
                await pc.setRemoteDescription(RTCSessionDescription(ev["sdp"], "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                send({"op": "answer", "room": "r", "peer": peer, "stream": ev["stream"],
                      "sdp": pc.localDescription.sdp})

    reader = asyncio.ensure_future(events())
    pub = pcs["pub"] = RTCPeerConnection(config)
    pub.addTransceiver(source, direction="sendonly")
    await pub.setLocalDescription(await pub.createOffer())
    send({"op": "publish", "room": "r", "peer": "pub", "sdp": pub.localDescription.sdp})
    for i in range(subscribers):
        pc = pcs[f"s{i}"] = RTCPeerConnection(config)
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        send({"op": "publish", "room": "r", "peer": f"s{i}", "sdp": pc.localDescription.sdp})
    deadline = time.monotonic() + 30
    while len([k for k in received if received[k] > 30]) < subscribers and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    stat = Path(f"/proc/{proc.pid}/stat")
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    before, sent_before, cpu_before, t0 = dict(received), source.n, cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    elapsed, used = time.monotonic() - t0, cpu() - cpu_before
    sent = source.n - sent_before
    got = [received.get(f"s{i}", 0) - before.get(f"s{i}", 0) for i in range(subscribers)]
    send({"op": "quit"})
    await proc.stdin.drain()
    await asyncio.wait_for(proc.wait(), 10)
    reader.cancel()
    await asyncio.gather(*(pc.close() for pc in pcs.values()), return_exceptions=True)
    return {"sent_fps": sent / elapsed, "delivered": min(got) / max(1, sent), "cpu": used / elapsed}


def run_sfu(args: argparse.Namespace) -> None:
    from tau.connect.sfu import forward

    forward.install()  # the bench's subscribers count encoded frames and never decode either
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[1:]))
    packets = encoded_stream()
    print(f"stream: 640x360 VP8 30 fps, {sum(map(len, packets)) * 8 / 4 / 1000:.0f} kbit/s")
    for k in args.subscribers:
        result = asyncio.run(sfu_round(k, args.seconds, packets))
        per_stream = 100 * result["cpu"] / k
        print(f"{k:3d} forwarded streams: {100 * result['delivered']:.1f}% of frames delivered (worst subscriber), "
              f"worker CPU {100 * result['cpu']:.0f}% of a core, {per_stream:.2f}% per stream")
        if result["delivered"] < 0.95:
            break


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sig = sub.add_parser("signaling")
    sig.add_argument("--rooms", type=int, default=100)
    sig.add_argument("--seconds", type=float, default=20)
    sig.add_argument("--interval", type=float, default=0.5)
    sig.add_argument("--database-url")
    sfu = sub.add_parser("sfu")
    sfu.add_argument("--seconds", type=float, default=8)
    sfu.add_argument("--subscribers", type=int, nargs="+", default=[1, 4, 8, 16, 24, 32, 48, 64])
    args = parser.parse_args()
    (run_signaling if args.what == "signaling" else run_sfu)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
