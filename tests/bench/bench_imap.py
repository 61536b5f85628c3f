"""By-hand IMAP benchmark (not part of the test suite): APPEND rate, SELECT, header sync FETCH,
body FETCH, SEARCH, STORE, IDLE notification latency and, optionally, many idle connections.

Against a running daemon:
    .venv/bin/python tests/bench/bench_imap.py --port 10143 --user alice@example.test --password secret-Pa55
Or let it start one (tau init + twistd on free ports, SQLite unless --database-url):
    .venv/bin/python tests/bench/bench_imap.py --spawn -n 10000 [--idle-conns 2000]

Prints one ``FIG name value unit`` line per figure. Targets (issue 3): FETCH 1:* ENVELOPE within
3x Dovecot's 94 ms, SELECT < 100 ms, APPEND >= 300 msg/s, IDLE p99 < 200 ms, 2,000 idle
connections < 1 GiB RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

LIT = re.compile(rb"\{(\d+)\+?\}\r\n$")
WORDS = ("report", "budget", "meeting", "schedule", "release", "server", "mailbox", "calendar", "invoice",
         "deadline", "project", "review", "draft", "agenda", "minutes", "summary", "follow", "update",
         "please", "thanks", "regards", "the", "of", "and", "to", "in", "is", "that", "for")


def make_message(i: int, size: int, to: str) -> bytes:
    rng = random.Random(i)
    sender = rng.randrange(200)
    head = (f"From: Sender {sender} <sender{sender:03d}@remote.test>\r\nTo: Alice <{to}>\r\n"
            f"Subject: Re: weekly report topic-{rng.randrange(100):03d} #{i}\r\n"
            f"Date: Mon, 05 Jan 2026 09:{i % 60:02d}:00 +0000\r\nMessage-ID: <bench-{i}@remote.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
    lines, total = [], len(head)
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(12))
        lines.append(line)
        total += len(line) + 2
    return (head + "\r\n".join(lines) + "\r\n").encode()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def fig(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"FIG {name} {value:.2f} {unit}" + (f"  # {note}" if note else ""), flush=True)


class Client:
    """Synchronous, literal-aware; just enough IMAP to time commands exactly."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb", buffering=1 << 16)
        self.n = 0
        self.read()

    def read(self) -> bytes:
        parts = []
        while True:
            line = self.f.readline()
            if not line:
                raise ConnectionError("closed")
            parts.append(line)
            m = LIT.search(line)
            if not m:
                return b"".join(parts)
            parts.append(self.f.read(int(m.group(1))))

    def command(self, cmd: bytes) -> list[bytes]:
        self.n += 1
        tag = b"B%d" % self.n
        self.sock.sendall(tag + b" " + cmd + b"\r\n")
        out = []
        while True:
            line = self.read()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line)
                return out
            out.append(line)

    def append(self, mailbox: str, raw: bytes) -> None:
        self.n += 1
        tag = b"B%d" % self.n
        self.sock.sendall(tag + b" APPEND " + mailbox.encode() + b" {%d}\r\n" % len(raw))
        if not self.read().startswith(b"+"):
            raise RuntimeError("no continuation")
        self.sock.sendall(raw + b"\r\n")
        while True:
            line = self.read()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line)
                return

    def close(self) -> None:
        try:
            self.command(b"LOGOUT")
        except Exception:  # noqa: BLE001
            pass
        self.sock.close()


def timed(fn, *args):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t, result


def run(args: argparse.Namespace, pid: int | None) -> None:
    login = b'LOGIN "%s" "%s"' % (args.user.encode(), args.password.encode())
    c = Client(args.host, args.port)
    c.command(login)
    box = args.mailbox
    c.command(b"CREATE " + box.encode()) if box != "INBOX" else None
    msgs = [make_message(i, args.size, args.user) for i in range(args.n)]
    lat = []
    t0 = time.perf_counter()
    for raw in msgs:
        dt, _ = timed(c.append, box, raw)
        lat.append(dt)
    wall = time.perf_counter() - t0
    fig("imap_append_rate", args.n / wall, "msg/s", f"{args.n} x ~{args.size} B, 1 connection, sync literals")
    fig("imap_append_p99", pct(lat, 99) * 1000, "ms")
    c.close()

    c = Client(args.host, args.port)
    fig("imap_login", timed(c.command, login)[0] * 1000, "ms")
    dt, lines = timed(c.command, b"SELECT " + box.encode())
    fig("imap_select", dt * 1000, "ms", next((x.decode().strip() for x in lines if b"EXISTS" in x), ""))
    for label in ("first", "second"):
        dt, lines = timed(c.command, b"UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)")
        fig(f"imap_fetch_all_envelope_{label}", dt * 1000, "ms", f"{len(lines)} responses")
    rng = random.Random(1)
    pick = sorted(rng.sample(range(1, args.n + 1), min(200, args.n)))
    uidset = b",".join(b"%d" % u for u in pick)
    dt, lines = timed(c.command, b"UID FETCH " + uidset + b" (BODY.PEEK[])")
    fig("imap_fetch_200_bodies", dt * 1000, "ms", f"{sum(map(len, lines)) / 2**20:.2f} MiB")
    dt, lines = timed(c.command, b"UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])")
    fig("imap_fetch_all_header_fields", dt * 1000, "ms", f"{len(lines)} responses")
    for name, cmd in (("from", b'UID SEARCH FROM "sender042@"'), ("subject", b'UID SEARCH SUBJECT "topic-042"'),
                      ("body", b'UID SEARCH BODY "quarterly invoice"'), ("body_common", b'UID SEARCH BODY "budget"')):
        times = sorted(timed(c.command, cmd)[0] * 1000 for _ in range(5))  # a loaded machine: median of 5
        fig(f"imap_search_{name}", times[2], "ms", f"min {times[0]:.1f} max {times[-1]:.1f}")
    dt, lines = timed(c.command, b"STORE 1:%d +FLAGS (\\Seen)" % (args.n // 2))
    fig("imap_store_seen_half", dt * 1000, "ms", f"{len(lines)} FETCH")
    c.close()
    idle_latency(args, login)
    if args.idle_conns:
        asyncio.run(idle_connections(args, login, pid))


def idle_latency(args: argparse.Namespace, login: bytes, label: str = "") -> None:
    idler, app = Client(args.host, args.port), Client(args.host, args.port)
    idler.command(login)
    app.command(login)
    exists = int(next(re.search(rb"(\d+) EXISTS", x).group(1) for x in idler.command(b"SELECT " + args.mailbox.encode())
                      if b"EXISTS" in x))
    lat = []
    for k in range(args.idle_rounds):
        idler.sock.sendall(b"I IDLE\r\n")
        assert idler.read().startswith(b"+")
        got: dict[str, float] = {}

        def reader(got: dict[str, float] = got, exists: int = exists) -> None:
            while True:
                line = idler.read()
                m = re.match(rb"\* (\d+) EXISTS", line)
                if m and int(m.group(1)) > exists:
                    got["t"], got["n"] = time.perf_counter(), int(m.group(1))
                    return

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        t0 = time.perf_counter()
        app.append(args.mailbox, make_message(100_000 + k, 4096, args.user))
        th.join(10)
        if "t" not in got:
            print("# IDLE: no EXISTS within 10 s", flush=True)
            break
        lat.append(got["t"] - t0)
        exists = int(got["n"])
        idler.sock.sendall(b"DONE\r\n")
        while not idler.read().startswith(b"I "):
            pass
    fig(f"imap_idle_notify{label}_p50", pct(lat, 50) * 1000, "ms", f"{len(lat)} rounds, APPEND start -> EXISTS")
    fig(f"imap_idle_notify{label}_p99", pct(lat, 99) * 1000, "ms")
    idler.close()
    app.close()


async def idle_connections(args: argparse.Namespace, login: bytes, pid: int | None) -> None:
    rss_before = rss_of(pid)
    conns = []
    sem = asyncio.Semaphore(50)

    async def one() -> None:
        async with sem:
            r, w = await asyncio.open_connection(args.host, args.port)
            await r.readline()
            for tag, cmd in ((b"a", login), (b"b", b"SELECT INBOX")):
                w.write(tag + b" " + cmd + b"\r\n")
                while not (await r.readline()).startswith(tag + b" "):
                    pass
            w.write(b"c IDLE\r\n")
            await r.readline()
            conns.append((r, w))

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(args.idle_conns)))
    fig("imap_idle_conns_open", time.perf_counter() - t0, "s", f"{len(conns)} LOGIN+SELECT+IDLE")
    await asyncio.sleep(1)
    rss = rss_of(pid)
    if rss is not None:
        fig("imap_idle_conns_rss", rss / 2**20, "MiB", f"daemon RSS with {len(conns)} idling (before: "
                                                         f"{(rss_before or 0) / 2**20:.0f} MiB)")
    args.idle_rounds = min(args.idle_rounds, 20)
    idle_latency(args, login, label=f"_with_{len(conns)}_idlers")
    for _, w in conns:
        w.close()


def rss_of(pid: int | None) -> int | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=10143)
    ap.add_argument("--user", default="alice@example.test")
    ap.add_argument("--password", default="secret-Pa55")
    ap.add_argument("--mailbox", default="INBOX")
    ap.add_argument("-n", type=int, default=10_000, help="messages to append")
    ap.add_argument("--size", type=int, default=10_240, help="bytes per message")
    ap.add_argument("--idle-rounds", type=int, default=50)
    ap.add_argument("--idle-conns", type=int, default=0, help="also hold this many idling connections")
    ap.add_argument("--spawn", action="store_true", help="start a private daemon (tau init + twistd)")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the spawned daemon's data folder")
    args = ap.parse_args()
    if not args.spawn:
        run(args, None)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.daemon import TauDaemon

    d = TauDaemon(Path(tempfile.mkdtemp(prefix="tau-bench-")), database_url=args.database_url,
                  listeners=("imap", "http")).init()
    d.add_user(args.user, args.password)
    d.start("imap")
    args.port = d.ports["imap"]
    try:
        run(args, d.proc.pid if d.proc else None)
    finally:
        d.stop()
        if not args.keep:
            shutil.rmtree(d.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
