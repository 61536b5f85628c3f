"""TauMessenger benchmark (issue 7, Performance) — a script, not a test.

    .venv/bin/python tests/bench/bench_messenger.py [--engine sqlite|postgres] [--connections 5000]

Against a real ``twistd -n tau`` on loopback, with tau.client's WebSocket as the client:

1. fan-out latency alice → bob over ``/ws/messages`` at ``--rate`` msgs/s (target p50 < 10 ms,
   p99 < 50 ms at 200/s): time from alice's ``send`` frame to bob's ``message`` frame, same
   clock, matched by server id (alice's ``sent`` replies); alice sends from 4 sockets, or rate/80
   (the per-socket limit is 100 frames/s), bob acks in batches (issue 20's target: p99 < 20 ms at
   1,000 msgs/s). Sends the server refuses (a socket's inbox full: it is not keeping up) are
   counted under ``refused``, never waited for;
2. idle WebSocket connections: daemon RSS with ``--connections`` open sockets (target 5,000
   in < 1.5 GiB);
3. messages accepted and persisted per second on the chosen engine (target 1,000/s on
   PostgreSQL): 32 sockets each keeping 16 sends in flight for ``--seconds``; every accepted
   message is a committed message row plus a queue row for bob's device.

Ciphertext is an opaque 256-byte blob: the server's work does not depend on what it encrypts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tau.client import DeviceState, Rest, Socket  # noqa: E402
from tests.support.daemon import TauDaemon  # noqa: E402

PASSWORD = "secret-Pa55"
CIPHERTEXT = base64.b64encode(os.urandom(256)).decode()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def fan_out(d: TauDaemon, alice: Rest, bob: Rest, bob_device: int, rate: int, seconds: float) -> dict:
    receiver = await Socket.connect(d.url, "/ws/messages", bob.token, {"device_id": bob_device})
    await receiver.recv_type("synced")
    # the per-socket limit is 100 frames/s: enough sockets to stay under it at any --rate
    senders = [await Socket.connect(d.url, "/ws/messages", alice.token) for _ in range(max(4, -(-rate // 80)))]
    for s in senders:
        await s.recv_type("synced")
    env = [{"user": "bob@example.test", "device_id": bob_device, "ciphertext": CIPHERTEXT}]
    conv = alice.post_message({"to": "bob@example.test", "envelopes": env})["conversation"]
    await receiver.recv_type("message")
    total = int(rate * seconds)
    sent_at: dict[int, float] = {}  # ref → when alice sent it
    id_of: dict[str, int] = {}  # server id → ref, from the "sent" replies
    refused: dict[str, int] = {}  # error code → count (a refused send never reaches bob)
    arrived: dict[str, float] = {}  # server id → when bob got it
    answered = asyncio.Event()

    async def replies(sock: Socket) -> None:
        while len(id_of) + sum(refused.values()) < total:
            frame = await sock.recv(60)
            if frame["type"] == "sent":
                id_of[frame["id"]] = frame["ref"]
            elif frame["type"] == "error":
                refused[frame["error"]] = refused.get(frame["error"], 0) + 1
        answered.set()

    async def receive() -> None:
        acks: list[str] = []
        while not (answered.is_set() and set(id_of) <= set(arrived)):
            try:
                frame = await receiver.recv(1)
            except TimeoutError:
                continue
            if frame["type"] != "message":
                continue
            arrived[frame["id"]] = time.perf_counter()
            acks.append(frame["id"])
            if len(acks) >= 50:
                receiver.send({"type": "ack", "ids": acks})
                acks = []
        if acks:
            receiver.send({"type": "ack", "ids": acks})

    listeners = [asyncio.ensure_future(replies(s)) for s in senders]
    recv_task = asyncio.ensure_future(receive())
    start = time.perf_counter()
    for i in range(total):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at[i] = time.perf_counter()
        senders[i % len(senders)].send({"type": "send", "ref": i, "conversation": conv, "envelopes": env})
    offered_s = time.perf_counter() - start
    await asyncio.wait_for(asyncio.wait(listeners, return_when=asyncio.FIRST_COMPLETED), 120)
    await asyncio.wait_for(recv_task, 120)
    for t in listeners:
        t.cancel()
    for s in [*senders, receiver]:
        await s.close()
    ms = [(arrived[i] - sent_at[ref]) * 1000 for i, ref in id_of.items()]
    ids = sorted(arrived, key=int)
    return {"messages": len(ms), "rate": rate, "offered_seconds": round(offered_s, 2), "refused": refused,
            "p50_ms": round(pct(ms, 0.50), 2), "p99_ms": round(pct(ms, 0.99), 2),
            "max_ms": round(max(ms), 2), "mean_ms": round(statistics.mean(ms), 2),
            "in_id_order": list(arrived) == ids}


async def idle_connections(d: TauDaemon, tokens: list[str], count: int) -> dict:
    before = rss_mib(d.proc.pid)
    sockets: list[Socket] = []
    started = time.perf_counter()
    for batch in range(0, count, 250):
        opened = await asyncio.gather(*[Socket.connect(d.url, "/ws/messages", tokens[(batch + i) % len(tokens)],
                                                       timeout=60) for i in range(min(250, count - batch))])
        sockets.extend(opened)
    await asyncio.gather(*[s.recv_type("synced", 60) for s in sockets])
    took = time.perf_counter() - started
    await asyncio.sleep(2)
    after = rss_mib(d.proc.pid)
    for s in sockets:
        s.abort()
    await asyncio.sleep(1)
    return {"connections": count, "rss_before_mib": round(before), "rss_after_mib": round(after),
            "per_connection_kib": round((after - before) * 1024 / count, 1), "open_seconds": round(took, 1)}


async def throughput(d: TauDaemon, alice: Rest, bob_device: int, seconds: float, sockets: int = 32,
                     window: int = 16) -> dict:
    socks = [await Socket.connect(d.url, "/ws/messages", alice.token) for _ in range(sockets)]
    for s in socks:
        await s.recv_type("synced")
    env = [{"user": "bob@example.test", "device_id": bob_device, "ciphertext": CIPHERTEXT}]
    conv = alice.post_message({"to": "bob@example.test", "envelopes": env})["conversation"]
    accepted, limited = [0], [0]
    deadline = time.perf_counter() + seconds

    async def drive(sock: Socket) -> None:
        for i in range(window):
            sock.send({"type": "send", "ref": i, "conversation": conv, "envelopes": env})
        while True:
            frame = await sock.recv(30)
            if frame["type"] == "sent":
                accepted[0] += 1
            elif frame.get("error") == "rate_limited":
                limited[0] += 1
                await asyncio.sleep(frame["retry_after"])
            if time.perf_counter() >= deadline:
                return
            sock.send({"type": "send", "ref": 0, "conversation": conv, "envelopes": env})

    started = time.perf_counter()
    await asyncio.gather(*[drive(s) for s in socks])
    took = time.perf_counter() - started
    for s in socks:
        s.abort()
    return {"accepted": accepted[0], "seconds": round(took, 1), "msgs_per_second": round(accepted[0] / took),
            "rate_limited": limited[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--skip", default="", help="comma list of fanout,idle,throughput to skip")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    pg = None
    url = None
    if args.engine == "postgres":
        from tests.support.databases import PostgresDatabase

        pg = PostgresDatabase("tau_bench")
        url = pg.url
    folder = Path(tempfile.mkdtemp(prefix="tau-bench-messenger-"))
    d = TauDaemon(folder, database_url=url, listeners=("http",),
                  env={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}).init()
    users = ["alice", "bob"] + [f"user{i}" for i in range(8)]
    for user in users:
        d.add_user(f"{user}@example.test", PASSWORD)
    d.start()
    results: dict = {"engine": args.engine}
    try:
        rests = {}
        for user in users:
            rests[user] = Rest(d.url)
            rests[user].login(f"{user}@example.test", PASSWORD)
        bob_device = DeviceState("bob@example.test")
        rests["bob"].put_keys(bob_device.upload(10))
        if "fanout" not in skip:
            results["fan_out"] = asyncio.run(fan_out(d, rests["alice"], rests["bob"], bob_device.device_id,
                                                     args.rate, args.seconds))
            print("fan-out:", results["fan_out"], flush=True)
        if "throughput" not in skip:
            results["throughput"] = asyncio.run(throughput(d, rests["alice"], bob_device.device_id, args.seconds))
            print("throughput:", results["throughput"], flush=True)
        if "idle" not in skip:
            tokens = [rests[u].token for u in users[2:]]
            results["idle"] = asyncio.run(idle_connections(d, tokens, args.connections))
            print("idle:", results["idle"], flush=True)
    finally:
        d.stop()
        if pg is not None:
            pg.drop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
