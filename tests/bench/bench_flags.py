"""By-hand benchmark (not part of the test suite): bulk flag and range operations on a 5,000-message
mailbox, tau against a peer IMAP server (Dovecot mdbox from ``../shared/bench``), alternated.

    .venv/bin/python tests/bench/bench_flags.py --spawn [--peer-port 41143] [--rounds 5]

Per round and server: ``STORE 1:5000 +FLAGS (\\Seen)`` (then ``-FLAGS`` untimed, to reset),
``MOVE 1:5000 Archive`` (and the move back, untimed), and ``EXPUNGE`` of 5,000 messages marked
\\Deleted (a copy of INBOX in a scratch mailbox); then bodies: ``FETCH a:b BODY.PEEK[]`` of 200
messages not fetched before (``fetch200_cold``), the same command again (``fetch200_warm``) and
the median of 200 one-message ``FETCH n BODY.PEEK[]`` of those (``fetch1_p50``). Prints medians
with min-max per operation and server, and tau's ratio to the peer. Targets (issue 15): STORE and
200 bodies ≤ 1.5× Dovecot mdbox.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_imap import Client, make_message  # noqa: E402

OPS = ("store", "move", "expunge", "fetch200_cold", "fetch200_warm", "fetch1_p50")
BODIES = 200


def connect(port: int, user: str, password: str) -> Client:
    c = Client("127.0.0.1", port)
    c.command(b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))
    return c


def fill(c: Client, n: int, user: str, size: int) -> None:
    """INBOX holds exactly ``n`` small messages; Archive and Scratch exist and are empty."""
    for box in (b"Archive", b"Scratch"):
        try:
            c.command(b"CREATE " + box)
        except RuntimeError:
            pass
    for box in (b"INBOX", b"Archive", b"Scratch"):
        c.command(b"SELECT " + box)
        if _count(c, box):
            c.command(b"STORE 1:* +FLAGS.SILENT (\\Deleted)")
            c.command(b"EXPUNGE")
    c.command(b"SELECT INBOX")
    for i in range(n):
        c.append("INBOX", make_message(i, size, user))


def _count(c: Client, box: bytes) -> int:
    for line in c.command(b"STATUS " + box + b" (MESSAGES)"):
        if b"MESSAGES" in line:
            return int(line.rsplit(b"MESSAGES ", 1)[1].split(b")")[0])
    return 0


def timed(c: Client, cmd: bytes) -> float:
    t = time.perf_counter()
    c.command(cmd)
    return (time.perf_counter() - t) * 1000


def one_round(c: Client, n: int, r: int) -> dict[str, float]:
    out = {}
    c.command(b"SELECT INBOX")
    out["store"] = timed(c, b"STORE 1:%d +FLAGS (\\Seen)" % n)
    c.command(b"STORE 1:%d -FLAGS.SILENT (\\Seen)" % n)
    out["move"] = timed(c, b"MOVE 1:%d Archive" % n)
    c.command(b"SELECT Archive")
    c.command(b"MOVE 1:* INBOX")
    c.command(b"SELECT INBOX")
    c.command(b"COPY 1:* Scratch")
    c.command(b"SELECT Scratch")
    c.command(b"STORE 1:* +FLAGS.SILENT (\\Deleted)")
    out["expunge"] = timed(c, b"EXPUNGE")
    c.command(b"SELECT INBOX")
    first = (r * BODIES) % max(n - BODIES, 1) + 1  # messages no earlier round fetched
    bodies = b"FETCH %d:%d BODY.PEEK[]" % (first, first + BODIES - 1)
    out["fetch200_cold"] = timed(c, bodies)
    out["fetch200_warm"] = timed(c, bodies)
    out["fetch1_p50"] = statistics.median(timed(c, b"FETCH %d BODY.PEEK[]" % seq)
                                          for seq in range(first, first + BODIES))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0, help="a running tau (else --spawn)")
    ap.add_argument("--spawn", action="store_true")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--peer-port", type=int, default=41143)
    ap.add_argument("--peer-name", default="dovecot-mdbox")
    ap.add_argument("--user", default="alice@example.test")
    ap.add_argument("--password", default="secret-Pa55")
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=2048, help="bytes per message")
    args = ap.parse_args()
    daemon = None
    if args.spawn:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from tests.support.daemon import TauDaemon

        daemon = TauDaemon(Path(tempfile.mkdtemp(prefix="tau-bench-")), database_url=args.database_url,
                           listeners=("imap", "http")).init()
        daemon.add_user(args.user, args.password)
        daemon.start("imap")
        args.port = daemon.ports["imap"]
    try:
        servers = {"tau": args.port}
        if args.peer_port:
            servers[args.peer_name] = args.peer_port
        clients = {name: connect(port, args.user, args.password) for name, port in servers.items()}
        for c in clients.values():
            fill(c, args.n, args.user, args.size)
        times: dict[str, dict[str, list[float]]] = {name: {op: [] for op in OPS} for name in servers}
        for r in range(args.rounds):
            for name, c in clients.items():  # alternated, close together in time
                for op, ms in one_round(c, args.n, r).items():
                    times[name][op].append(ms)
        for op in OPS:
            for name in servers:
                v = times[name][op]
                print(f"FIG {op}_{name} {statistics.median(v):.1f} ms  # min {min(v):.1f} max {max(v):.1f}"
                      f" n={len(v)}", flush=True)
            if args.peer_name in times:
                ratio = statistics.median(times["tau"][op]) / statistics.median(times[args.peer_name][op])
                print(f"FIG {op}_ratio {ratio:.2f} x", flush=True)
        for c in clients.values():
            c.close()
    finally:
        if daemon is not None:
            daemon.stop()
            shutil.rmtree(daemon.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
