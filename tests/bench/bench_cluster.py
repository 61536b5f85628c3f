"""Cluster benchmark (not a test): aggregate SMTP accept and WebSocket message throughput of two
nodes against one, and the latency of a message posted on node A to a socket held on node B.

    .venv/bin/python tests/bench/bench_cluster.py [--seconds 8] [--clients 8]

Needs the local PostgreSQL, ``redis-server`` (a private one is started) and ``moto_server``.
SMTP: ``clients`` threads per node, each its own connection, one small message per transaction
to a local user. Messages: ``clients`` threads per node posting ``POST /api/messages`` (each
answered 201 only after commit; the bus fans out to the receiving socket). Latency: post on A,
time until bob's socket on B has it (p50/p99 of 300).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: tests.support

from tau.client import Client  # noqa: E402
from tests.support.cluster import Cluster, MotoServer, RedisServer  # noqa: E402
from tests.support.databases import PostgresDatabase  # noqa: E402

PASSWORD = "secret-Pa55"
USERS = tuple(f"u{i}@example.test" for i in range(16)) + ("bob@example.test",)


def smtp_load(nodes: list, seconds: float, clients: int) -> float:
    done = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(node, n: int) -> None:
        with smtplib.SMTP("127.0.0.1", node.ports["smtp"], timeout=30) as s:
            while time.monotonic() < stop:
                s.sendmail("x@remote.test", [USERS[n % 16]], b"Subject: bench\r\n\r\n" + (b"x" * 72 + b"\r\n") * 28)
                with lock:
                    done[0] += 1

    threads = [threading.Thread(target=worker, args=(node, i)) for node in nodes for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.monotonic() - started)


def message_load(nodes: list, tokens: dict[str, str], seconds: float, clients: int) -> float:
    import http.client

    done = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(node, n: int) -> None:
        sender = USERS[n % 16]
        conn = http.client.HTTPConnection("127.0.0.1", node.ports["http"], timeout=30)
        body = json.dumps({"to": "bob@example.test", "body": "bench"})
        headers = {"Authorization": f"Bearer {tokens[sender]}", "Content-Type": "application/json"}
        while time.monotonic() < stop:
            conn.request("POST", "/api/messages", body, headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 201:
                with lock:
                    done[0] += 1

    threads = [threading.Thread(target=worker, args=(node, i)) for node in nodes for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.monotonic() - started)


async def latency(a, b, count: int = 300) -> list[float]:
    sender = await Client.login(a.url, USERS[0], PASSWORD)
    bob = await Client.login(b.url, "bob@example.test", PASSWORD)
    await bob.connect()
    while not bob.inbox.empty():
        bob.inbox.get_nowait()
    out = []
    for n in range(count):
        started = time.perf_counter()
        await sender.send_plain(f"lat {n}", to="bob@example.test")
        while True:
            got = await bob.next_message(10)
            if got.text == f"lat {n}":
                break
        out.append((time.perf_counter() - started) * 1000)
    await bob.disconnect()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    pg, redis, moto = PostgresDatabase("tau_bench_cluster"), RedisServer().start(), MotoServer().start()
    cluster = Cluster(Path(tempfile.mkdtemp()), 2, pg.url, {"TAU_REDIS_URL": redis.url(1), **moto.env(),
                                                           "TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0",
                                                           "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"},
                      listeners=("smtp", "http"))
    try:
        cluster.init(USERS, PASSWORD).start()
        a, b = cluster.nodes
        tokens = {u: a.token(u, PASSWORD) for u in USERS}
        results = {}
        results["smtp_1_node"] = smtp_load([a], args.seconds, args.clients)
        results["smtp_2_nodes"] = smtp_load([a, b], args.seconds, args.clients)
        results["messages_1_node"] = message_load([a], tokens, args.seconds, args.clients)
        results["messages_2_nodes"] = message_load([a, b], tokens, args.seconds, args.clients)
        lat = asyncio.run(latency(a, b))
        lat.sort()
        results["cross_node_latency_ms_p50"] = statistics.median(lat)
        results["cross_node_latency_ms_p99"] = lat[int(len(lat) * 0.99) - 1]
        for key, value in results.items():
            print(f"{key:32} {value:10.1f}")
        print(f"smtp speed-up 2 vs 1: {results['smtp_2_nodes'] / results['smtp_1_node']:.2f}x; "
              f"messages: {results['messages_2_nodes'] / results['messages_1_node']:.2f}x")
    finally:
        cluster.stop()
        redis.stop()
        moto.stop()
        pg.drop()


if __name__ == "__main__":
    sys.exit(main())
