"""100 SMTP connections from 127.0.0.1 at once, each delivering one message to a local user: all
accepted and delivered. Loopback is in ``[limits] trusted_networks``, so the per-address
connection cap (``smtp_connections_per_ip``, 50 by default) does not refuse it (tau.app.connlimit)."""

from __future__ import annotations

import smtplib
import threading
import time

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.smtp import DaemonStore

pytestmark = pytest.mark.e2e
ALICE = "alice@example.test"
CLIENTS = 100


@pytest.fixture(params=engines())
def daemon(request, tmp_path):
    url = daemon_database_url(request)
    daemon = TauDaemon(tmp_path, database_url=url, listeners=("smtp", "http"))
    daemon.init()
    daemon.add_user(ALICE)
    daemon.start("smtp")
    yield daemon
    daemon.stop()


def test_100_concurrent_loopback_connections_are_all_delivered(daemon):
    port = daemon.ports["smtp"]
    opened = threading.Barrier(CLIENTS, timeout=60)
    results: dict[int, object] = {}

    def client(i: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                s.ehlo("client.example")
                opened.wait()                    # every connection is open before anyone sends
                s.sendmail("sender@remote.test", [ALICE],
                           f"From: sender@remote.test\r\nTo: {ALICE}\r\nSubject: parallel {i}\r\n"
                           f"Message-ID: <p{i}@remote.test>\r\n\r\nmessage {i}\r\n".encode())
            results[i] = "ok"
        except (smtplib.SMTPException, OSError, threading.BrokenBarrierError) as exc:
            results[i] = exc

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.monotonic() - started
    assert [i for i in range(CLIENTS) if results.get(i) != "ok"] == [], {i: r for i, r in results.items() if r != "ok"}
    store = DaemonStore(daemon)
    try:
        subjects = {m.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0] for m in store.messages(ALICE)}
    finally:
        store.close()
    assert subjects == {f"parallel {i}".encode() for i in range(CLIENTS)}
    print(f"{CLIENTS} concurrent loopback deliveries in {elapsed:.2f}s")

