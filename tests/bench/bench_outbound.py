"""Benchmark (not a test): outbound throughput to a loopback peer with 10 concurrent deliveries, and
MX acceptance with and without 10,000 messages being delivered from the queue at the same time.

Run: ``.venv/bin/python tests/bench/bench_outbound.py [--engine sqlite|postgres] [--messages 1000]``.
Targets (issue 4): >= 100 msgs/s outbound; inbound slowed by at most 20 % with 10,000 queued.
Each inbound measurement follows ``WARM_UP`` unmeasured messages on the same daemon, so the quiet
figure does not carry the first messages' one-off costs (lazy imports, cold caches) that the busy
one, taken after the worker has run for a while, would not.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: tests.support

from tests.support.daemon import TauDaemon  # noqa: E402
from tests.support.outbound import RemotePeer  # noqa: E402
from tests.support.smtp import DaemonStore  # noqa: E402

ALICE = "alice@example.test"
BODY = ("x" * 76 + "\r\n") * 128                      # ~10 KB
WARM_UP = 80                                          # inbound messages sent before each measurement


def daemon_for(folder: Path, peer: RemotePeer, url: str | None, poll: int) -> TauDaemon:
    d = TauDaemon(folder, database_url=url, listeners=("smtp", "submission", "http"), extra={
        "TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{peer.dns_port}", "TAU_OUTBOUND_PORT": str(peer.smtp_port),
        "TAU_OUTBOUND_POLL_INTERVAL": str(poll), "TAU_OUTBOUND_CONCURRENCY": "10",
        "TAU_OUTBOUND_MAX_PER_DOMAIN": "10", "TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0"})
    return d


def outbound(folder: Path, url: str | None, count: int) -> float:
    peer = RemotePeer(folder, {"remote.test": [["MX", 10, "mx.remote.test"]], "mx.remote.test": [["A", "127.0.0.1"]],
                               "example.test": [["TXT", "v=spf1 ip4:127.0.0.0/8 -all"]]}).start()
    d = daemon_for(folder, peer, url, 3600)           # queue everything first: no poll, submission does not kick
    d.init()
    d.add_user(ALICE)
    d.cli("dkim", "keygen", "example.test")
    d.start("submission")
    ctx = ssl.create_default_context(cafile=str(d.data / "tls/cert.pem"))
    with smtplib.SMTP("localhost", d.ports["submission"], timeout=60) as s:
        s.starttls(context=ctx)
        s.login(ALICE, "secret-Pa55")
        for i in range(count):
            s.sendmail(ALICE, ["bob@remote.test"], (f"From: {ALICE}\r\nTo: bob@remote.test\r\nSubject: bench {i}\r\n"
                                                    f"Message-ID: <bench-{i}@example.test>\r\n\r\n{BODY}").encode())
    d.stop()
    d.env["TAU_OUTBOUND_POLL_INTERVAL"] = "1"
    d.start("submission")
    deadline = time.monotonic() + 600
    while len(list(peer.out.glob("*.eml"))) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    stamps = sorted(int(p.name.split("-")[0]) for p in peer.out.glob("*.eml"))
    d.stop()
    peer.stop()
    print(f"  peak concurrent connections at the peer: {peer.stats()['peak']}")
    return (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9)


def inbound_rate(d: TauDaemon, total: int, conns: int = 8) -> float:
    per = total // conns
    errors: list[str] = []

    def worker(n: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", d.ports["smtp"], timeout=120) as s:
                for i in range(per):
                    s.sendmail("news@example.test", [ALICE], (f"From: news@example.test\r\nTo: {ALICE}\r\n"
                                                               f"Subject: in {n}-{i}\r\n\r\n{BODY}").encode())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(conns)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("  errors:", errors[:3])
    return per * conns / (time.monotonic() - started)


def inbound(folder: Path, url: str | None, total: int, queued: int) -> tuple[float, float]:
    peer = RemotePeer(folder, {"remote.test": [["MX", 10, "mx.remote.test"]], "mx.remote.test": [["A", "127.0.0.1"]],
                               "example.test": [["TXT", "v=spf1 ip4:127.0.0.0/8 -all"]]}).start()
    d = daemon_for(folder, peer, url, 1)
    d.init()
    d.add_user(ALICE)
    d.start("smtp")
    inbound_rate(d, WARM_UP)                            # first messages pay for lazy imports, cold caches
    quiet = inbound_rate(d, total)
    d.stop()
    store = DaemonStore(d)
    key = store.registry.blobs.sync.put(f"From: {ALICE}\r\nSubject: queued\r\n\r\n{BODY}".encode()).key
    now = int(time.time())

    def fill(txn):
        txn.executemany("INSERT INTO outbound_queue (user_id, mail_from, rcpt_to, blob_key, size, message_id,"
                        " created_at, next_attempt_at) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)",
                        [(ALICE, json.dumps(["bob@remote.test"]), key, len(BODY), f"<q-{i}@example.test>", now, now)
                         for i in range(queued)])
        txn.execute("INSERT INTO mail_blobs (blob_key, refs) VALUES (?, ?)", (key, queued))

    store.registry.db.sync.run("bench_fill", fill)
    store.close()
    d.start("smtp")
    time.sleep(2)                                       # the worker is delivering the 10,000 now
    inbound_rate(d, WARM_UP)
    busy = inbound_rate(d, total)
    delivered = len(list(peer.out.glob("*.eml")))
    d.stop()
    peer.stop()
    print(f"  (the worker delivered {delivered} queued messages meanwhile)")
    return quiet, busy


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="sqlite", choices=("sqlite", "postgres"))
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--inbound", type=int, default=1000)
    parser.add_argument("--queued", type=int, default=10000)
    args = parser.parse_args()
    url = None
    pg = None
    if args.engine == "postgres":
        from tests.support.databases import PostgresDatabase

        pg = PostgresDatabase("tau_bench")
        url = pg.url
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rate = outbound(Path(tmp) / "out", url, args.messages)
            print(f"outbound [{args.engine}]: {rate:.0f} msgs/s to the peer (10 concurrent, DKIM-signed, ~10 KB)")
        if pg is not None:
            pg.truncate_all()
        with tempfile.TemporaryDirectory() as tmp:
            quiet, busy = inbound(Path(tmp) / "in", url, args.inbound, args.queued)
            print(f"inbound MX [{args.engine}]: {quiet:.0f} msgs/s with an empty queue, {busy:.0f} msgs/s while "
                  f"{args.queued} queued are delivered ({(1 - busy / quiet) * 100:+.0f} % slower)")
    finally:
        if pg is not None:
            pg.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
