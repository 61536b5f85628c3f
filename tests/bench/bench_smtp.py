"""SMTP MX accept benchmark: N messages of ~10 KB over C connections, each 250 = durably stored.

Against a running daemon (``tau init --dev-ports`` + a user alice@example.test)::

    python tests/bench/bench_smtp.py --port 10025 --messages 2000 --connections 8

or let it start a throwaway daemon of this checkout (SQLite by default, ``--database-url`` for
PostgreSQL)::

    python tests/bench/bench_smtp.py --start --messages 2000 --connections 8

Prints accepted msgs/s and latency percentiles; with ``--start`` it also counts the rows in the
recipient's INBOX afterwards. Not a test: ``pytest -m bench tests/bench/bench_smtp.py`` runs a
smaller version and only checks that every message was stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench


def make_message(i: int, size: int, rcpt: str) -> bytes:
    """A plausible text message of about ``size`` bytes, dot-stuffed and terminated for DATA."""
    rnd = random.Random(i)
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", ".dot"]
    head = (f"From: Sender {i} <sender{i % 200}@remote.test>\r\nTo: <{rcpt}>\r\n"
            f"Subject: benchmark message {i}\r\nMessage-ID: <bench-{i}-{rnd.random()}@remote.test>\r\n"
            f"Date: Mon, 24 Nov 2025 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
    lines, total = [], len(head)
    while total < size:
        line = " ".join(rnd.choice(words) for _ in range(12))
        lines.append(line)
        total += len(line) + 2
    body = "\r\n".join(lines).replace("\r\n.", "\r\n..")
    return (head + body + "\r\n.\r\n").encode()


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)


async def _session(host: str, port: int, queue: asyncio.Queue, payloads: list[bytes], rcpt: str,
                   latencies: list[float], errors: list) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    await _reply(reader)
    writer.write(b"EHLO bench.remote.test\r\n")
    await _reply(reader)
    while True:
        try:
            i = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        started = time.perf_counter()
        # PIPELINING (RFC 2920): MAIL, RCPT and DATA in one write
        writer.write(b"MAIL FROM:<sender%d@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (i % 200, rcpt.encode()))
        codes = [(await _reply(reader))[0] for _ in range(3)]
        if codes != [250, 250, 354]:
            errors.append((i, codes))
            writer.write(b"RSET\r\n")
            await _reply(reader)
            continue
        writer.write(payloads[i])
        code, text = await _reply(reader)
        if code == 250:
            latencies.append(time.perf_counter() - started)
        else:
            errors.append((i, code, text))
    writer.write(b"QUIT\r\n")
    try:
        await asyncio.wait_for(_reply(reader), 5)
    except Exception:
        pass
    writer.close()


async def run(host: str, port: int, messages: int, connections: int, size: int, rcpt: str) -> dict:
    payloads = [make_message(i, size, rcpt) for i in range(messages)]
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(messages):
        queue.put_nowait(i)
    latencies: list[float] = []
    errors: list = []
    started = time.perf_counter()
    await asyncio.gather(*(_session(host, port, queue, payloads, rcpt, latencies, errors)
                           for _ in range(connections)))
    wall = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1000 if latencies else 0.0

    return {"accepted": len(latencies), "errors": len(errors), "first_errors": errors[:3], "seconds": wall,
            "rate": len(latencies) / wall, "p50_ms": pct(50), "p99_ms": pct(99)}


def stored_count(daemon: object, user: str) -> int:
    """Messages in ``user``'s INBOX, read through the store of the daemon's data dir."""
    from tests.support.smtp import DaemonStore

    store = DaemonStore(daemon)
    try:
        return store.count(user)
    finally:
        store.close()


def start_daemon(folder: Path, database_url: str | None) -> object:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.daemon import TauDaemon

    daemon = TauDaemon(folder, database_url=database_url, listeners=("smtp", "http"))
    daemon.init()
    daemon.cli("user", "add", "alice@example.test", "--password-stdin", input=b"secret-Pa55\n",  # type: ignore
               check=False)  # an existing PostgreSQL database may have the user already
    daemon.start("smtp")
    return daemon


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=10025)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--size", type=int, default=10 * 1024)
    ap.add_argument("--rcpt", default="alice@example.test")
    ap.add_argument("--start", action="store_true", help="start a throwaway daemon of this checkout")
    ap.add_argument("--database-url", default=None, help="with --start: e.g. postgresql://...")
    args = ap.parse_args()
    daemon = None
    with tempfile.TemporaryDirectory(prefix="tau-bench-") as tmp:
        if args.start:
            daemon = start_daemon(Path(tmp), args.database_url)
            args.port = daemon.ports["smtp"]  # type: ignore[attr-defined]
        try:
            result = asyncio.run(run(args.host, args.port, args.messages, args.connections, args.size, args.rcpt))
            print(f"smtp accept: {result['accepted']} of {args.messages} x {args.size} B over {args.connections}"
                  f" connections in {result['seconds']:.2f} s = {result['rate']:.0f} msg/s;"
                  f" latency p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms;"
                  f" errors {result['errors']} {result['first_errors'] or ''}")
            if daemon is not None:
                print(f"stored in INBOX: {stored_count(daemon, args.rcpt)}")
        finally:
            if daemon is not None:
                daemon.stop()  # type: ignore[attr-defined]


def test_smtp_accept_bench(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, os.environ.get("TAU_BENCH_DATABASE_URL"))
    try:
        result = asyncio.run(run("127.0.0.1", daemon.ports["smtp"], 400, 8, 10 * 1024,  # type: ignore[attr-defined]
                                 "alice@example.test"))
        print(result)
        assert result["accepted"] == 400 and result["errors"] == 0
        assert stored_count(daemon, "alice@example.test") == 400
    finally:
        daemon.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
