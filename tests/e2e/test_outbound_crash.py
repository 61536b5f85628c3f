"""The queue survives kill -9 of twistd with 100 messages in flight: after a restart every message
reaches the peer exactly once (counted by Message-ID). And ``[outbound] smarthost`` relays through a
server that requires STARTTLS and AUTH (RFC 4954)."""

from __future__ import annotations

import collections
import smtplib
import ssl
import time

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import engines
from tests.support.outbound import RemotePeer, make_tls
from tests.support.smtp import DaemonStore

pytestmark = pytest.mark.e2e
ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
COUNT = 100


def database(request) -> str | None:
    if request.param != "postgres":
        return None
    pg = request.getfixturevalue("postgres_db")
    pg.truncate_all()
    return pg.url


def submit_many(daemon: TauDaemon, count: int, rcpt: str) -> None:
    ctx = ssl.create_default_context(cafile=str(daemon.data / "tls/cert.pem"))
    with smtplib.SMTP("localhost", daemon.ports["submission"], timeout=30) as s:
        s.starttls(context=ctx)
        s.login(ALICE, PASSWORD)
        for i in range(count):
            s.sendmail(ALICE, [rcpt], (f"From: {ALICE}\r\nTo: {rcpt}\r\nSubject: crash {i}\r\n"
                                       f"Message-ID: <crash-{i}@example.test>\r\n\r\nbody {i}\r\n").encode())


def message_ids(peer: RemotePeer) -> collections.Counter[str]:
    found: collections.Counter[str] = collections.Counter()
    for _, raw in peer.messages():
        for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                found[line.split(b":", 1)[1].strip().decode()] += 1
    return found


def wait(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@pytest.mark.parametrize("engine", engines(), indirect=False)
def test_kill_9_with_100_in_flight(engine, request, tmp_path):
    request.param = engine
    url = database(request)
    peer = RemotePeer(tmp_path, {"remote.test": [["MX", 10, "mx.remote.test"]],
                                 "mx.remote.test": [["A", "127.0.0.1"]]}).start()
    daemon = TauDaemon(tmp_path, database_url=url, listeners=("submission", "http"), extra={
        "TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{peer.dns_port}", "TAU_OUTBOUND_PORT": str(peer.smtp_port),
        "TAU_OUTBOUND_POLL_INTERVAL": "1", "TAU_OUTBOUND_LEASE": "3", "TAU_OUTBOUND_CONCURRENCY": "10",
        "TAU_OUTBOUND_COMMAND_TIMEOUT": "60"})
    daemon.init()
    daemon.add_user(ALICE)
    daemon.start("submission")
    store = DaemonStore(daemon)
    try:
        # after the first 20 the peer holds every end of data: those deliveries hang mid-DATA
        # (set up front: the queue can drain faster than a test can watch it)
        (peer.out / "stall").write_text("20")
        submit_many(daemon, COUNT, "bob@remote.test")
        assert wait(lambda: len(peer.messages()) >= 20, 30)
        time.sleep(1.5)                                                      # the 250s already given are recorded
        in_flight = store.query("SELECT COUNT(*) FROM outbound_queue WHERE status = 'sending'")[0][0]
        before = len(peer.messages())
        daemon.proc.kill()                                                   # kill -9
        daemon.proc.wait()
        assert in_flight > 0 and before < COUNT, (in_flight, before)
        (peer.out / "stall").unlink()
        daemon.start("submission")
        assert wait(lambda: len(message_ids(peer)) >= COUNT, 60), len(message_ids(peer))
        time.sleep(1.0)                                                      # anything extra would show now
        counts = message_ids(peer)
        assert set(counts) == {f"<crash-{i}@example.test>" for i in range(COUNT)}
        assert max(counts.values()) == 1, [m for m, n in counts.items() if n > 1]
        assert wait(lambda: store.query("SELECT status, COUNT(*) FROM outbound_queue GROUP BY status")
                    == [("sent", COUNT)], 10)
    finally:
        store.close()
        daemon.stop()
        peer.stop()


@pytest.mark.parametrize("engine", engines())
def test_smarthost_with_starttls_and_auth(engine, request, tmp_path):
    request.param = engine
    url = database(request)
    ca, cert, key = make_tls(tmp_path, ["relay.test"])
    relay = RemotePeer(tmp_path, {}, tls_cert=str(cert), tls_key=str(key), auth=["relay-user", "relay-pw"]).start()
    daemon = TauDaemon(tmp_path, database_url=url, listeners=("submission", "http"), extra={
        "TAU_OUTBOUND_SMARTHOST": f"127.0.0.1:{relay.smtp_port}", "TAU_OUTBOUND_SMARTHOST_USER": "relay-user",
        "TAU_OUTBOUND_SMARTHOST_PASSWORD": "relay-pw", "TAU_OUTBOUND_SMARTHOST_TLS": "starttls",
        "TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{relay.dns_port}", "TAU_OUTBOUND_POLL_INTERVAL": "1"})
    daemon.init()
    daemon.add_user(ALICE)
    daemon.start("submission")
    try:
        submit_many(daemon, 2, "someone@anywhere.example")
        assert wait(lambda: len(relay.messages()) >= 2, 20)
        envelopes = [env for env, _ in relay.messages()]
        assert all(e["tls"] and e["user"] == "relay-user" and e["rcpts"] == ["someone@anywhere.example"]
                   for e in envelopes), envelopes
    finally:
        daemon.stop()
        relay.stop()
