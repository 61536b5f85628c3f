"""Issue 13, item 7 against the real daemon (``twistd -n tau``), SQLite and PostgreSQL, real sockets:
per-address connection caps on SMTP, IMAP and HTTP answered with each protocol's refusal, the
trusted network exempt (100 concurrent deliveries from 127.0.0.1 all get 250), and share-link
password guessing throttled (429) while the right password from another address still works."""

from __future__ import annotations

import http.client
import json
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.smtp import DaemonStore

pytestmark = pytest.mark.e2e

ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
CAP = 5
OUTSIDER = "127.0.0.2"          # not in trusted_networks (127.0.0.1/32 here)


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    url = daemon_database_url(request)
    d = TauDaemon(tmp_path_factory.mktemp(f"exhaustion-{request.param}"), database_url=url,
                  listeners=("smtp", "imap", "imaps", "http"),
                  env={"TAU_LIMITS_TRUSTED_NETWORKS": "127.0.0.1/32",
                       "TAU_LIMITS_SMTP_CONNECTIONS_PER_IP": str(CAP),
                       "TAU_LIMITS_IMAP_CONNECTIONS_PER_IP": str(CAP),
                       "TAU_LIMITS_HTTP_CONNECTIONS_PER_IP": str(CAP)})
    try:
        d.init()
        d.add_user(ALICE, PASSWORD)
        d.start()
        yield d
    finally:
        d.stop()


def dial(port: int, source: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return s


def first_bytes(s: socket.socket) -> bytes:
    return s.recv(4096)


def closed_after(s: socket.socket) -> bool:
    """The server closes the connection (EOF) once it has said its piece."""
    s.settimeout(10)
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return True


@pytest.mark.parametrize("listener, greeting, refusal", [
    ("smtp", b"220 ", b"421 4.7.0 Too many connections"),
    ("imap", b"* OK ", b"* BYE [UNAVAILABLE] Too many connections"),
])
def test_mail_listeners_refuse_the_connection_over_the_cap(daemon, listener, greeting, refusal) -> None:
    port = daemon.ports[listener]
    held = [dial(port, OUTSIDER) for _ in range(CAP)]
    try:
        assert all(first_bytes(s).startswith(greeting) for s in held)
        extra = dial(port, OUTSIDER)
        assert first_bytes(extra).startswith(refusal)
        assert closed_after(extra)
        extra.close()
        # the trusted address is not capped meanwhile
        trusted = [dial(port, "127.0.0.1") for _ in range(CAP * 3)]
        assert all(first_bytes(s).startswith(greeting) for s in trusted)
        for s in trusted:
            s.close()
    finally:
        for s in held:
            s.close()
    # the slots are given back when connections close
    deadline = time.monotonic() + 10
    while True:
        again = dial(port, OUTSIDER)
        data = first_bytes(again)
        again.close()
        if data.startswith(greeting) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert data.startswith(greeting)


def test_http_listener_refuses_the_connection_over_the_cap(daemon) -> None:
    port = daemon.ports["http"]
    held = [dial(port, OUTSIDER) for _ in range(CAP)]
    try:
        time.sleep(0.3)  # HTTP says nothing first: let the server accept the held ones
        extra = dial(port, OUTSIDER)
        answer = first_bytes(extra)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 10" in answer
        assert b'"error": "unavailable"' in answer
        extra.close()
    finally:
        for s in held:
            s.close()


def test_one_hundred_concurrent_deliveries_from_the_trusted_address_all_get_250(daemon) -> None:
    store = DaemonStore(daemon)
    before = store.count(ALICE)
    clients = [smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=60, source_address=("127.0.0.1", 0))
               for _ in range(100)]                               # 100 sessions open at once
    try:
        assert all(c.ehlo()[0] == 250 for c in clients)

        def deliver(i: int) -> dict:
            msg = (f"From: sender{i}@remote.test\r\nTo: {ALICE}\r\nSubject: flood {i}\r\n"
                   f"Message-ID: <flood{i}@remote.test>\r\n\r\nbody {i}\r\n")
            return clients[i].sendmail(f"sender{i}@remote.test", [ALICE], msg)

        with ThreadPoolExecutor(max_workers=100) as pool:
            refused = list(pool.map(deliver, range(100)))
        assert refused == [{}] * 100                              # every RCPT and DATA got 250
    finally:
        for c in clients:
            try:
                c.quit()
            except smtplib.SMTPException:
                pass
    assert store.count(ALICE) == before + 100
    store.close()


def request(daemon: TauDaemon, method: str, path: str, source: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", daemon.ports["http"], timeout=30, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_share_link_password_guessing_is_throttled(daemon) -> None:
    token = daemon.token(ALICE, PASSWORD)
    auth = {"Authorization": f"Bearer {token}"}
    status, _, body = request(daemon, "POST", "/api/files?path=/secret.txt", "127.0.0.1", b"TOP SECRET", auth)
    assert status == 201, body
    status, _, body = request(daemon, "POST", "/api/shares", "127.0.0.1",
                              json.dumps({"file_id": json.loads(body)["id"], "password": "right one"}).encode(),
                              {**auth, "Content-Type": "application/json"})
    assert status == 201, body
    link = "/s/" + json.loads(body)["token"]
    statuses, retry = [], None
    for i in range(300):
        status, headers, _ = request(daemon, "GET", f"{link}?password=guess{i}", "127.0.0.3")
        statuses.append(status)
        retry = headers.get("retry-after", retry)
    first = statuses.index(429)
    assert first <= 12 and set(statuses[:first]) == {401} and statuses.count(401) <= 20
    assert retry is not None and int(retry) >= 1
    status, _, body = request(daemon, "GET", f"{link}?password=right%20one", "127.0.0.4")
    assert status == 200 and body == b"TOP SECRET"


def websocket(port: int, source: str) -> socket.socket:
    s = dial(port, source)
    s.sendall(b"GET /ws/messages HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    return s


def test_websocket_takeovers_give_their_slots_back(daemon) -> None:
    """A WebSocket takes the connection over from the HTTP channel; its slot must still be released
    when it closes, or an address would be locked out after ``CAP`` sockets over time."""
    port = daemon.ports["http"]
    for _round in range(3):
        socks = [websocket(port, OUTSIDER) for _ in range(CAP)]
        answers = [first_bytes(s) for s in socks]
        assert all(a.startswith(b"HTTP/1.1 101 ") for a in answers), answers
        for s in socks:
            s.close()
        time.sleep(0.5)
    status, _, _ = request(daemon, "GET", "/api/health", OUTSIDER)
    assert status == 200


def test_implicit_tls_listener_refuses_through_tls(daemon) -> None:
    """On imaps the refusal is sent after the handshake, so the client can read why."""
    context = ssl.create_default_context(cafile=str(daemon.data / "tls/cert.pem"))
    port = daemon.ports["imaps"]
    held = [context.wrap_socket(dial(port, OUTSIDER), server_hostname="localhost") for _ in range(CAP)]
    try:
        assert all(first_bytes(s).startswith(b"* OK ") for s in held)
        extra = context.wrap_socket(dial(port, OUTSIDER), server_hostname="localhost")
        assert first_bytes(extra).startswith(b"* BYE [UNAVAILABLE] Too many connections")
        extra.close()
    finally:
        for s in held:
            s.close()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_24_guessers_neither_slow_alice_down_nor_grow_the_daemon(daemon) -> None:
    """The attack of the report: 24 anonymous addresses guessing a link's password at once, while
    alice downloads. Hashing is bounded (2 at once, 64 MiB each), so RSS stays far from +500 MB."""
    token = daemon.token(ALICE, PASSWORD)
    auth = {"Authorization": f"Bearer {token}"}
    _, _, body = request(daemon, "POST", "/api/files?path=/guessed.txt", "127.0.0.1", b"G", auth)
    _, _, body = request(daemon, "POST", "/api/shares", "127.0.0.1",
                         json.dumps({"file_id": json.loads(body)["id"], "password": "right one"}).encode(),
                         {**auth, "Content-Type": "application/json"})
    link = "/s/" + json.loads(body)["token"]
    _, _, body = request(daemon, "POST", "/api/files?path=/alice.bin", "127.0.0.1", b"A" * 1_000_000, auth)
    file_id = json.loads(body)["id"]
    pid = daemon.proc.pid
    before, peak, done = rss_mb(pid), [0.0], []

    def watch() -> None:
        while not done:
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.05)

    def guesser(n: int) -> list[int]:
        return [request(daemon, "GET", f"{link}?password=g{n}-{i}", f"127.0.1.{n + 1}")[0] for i in range(15)]

    with ThreadPoolExecutor(max_workers=26) as pool:
        watcher = pool.submit(watch)
        attacks = [pool.submit(guesser, n) for n in range(24)]
        took = []
        for _ in range(10):
            start = time.monotonic()
            status, _, data = request(daemon, "GET", f"/api/files/{file_id}", "127.0.0.1", headers=auth)
            took.append(time.monotonic() - start)
            assert status == 200 and len(data) == 1_000_000
        statuses = [s for a in attacks for s in a.result()]
        done.append(True)
        watcher.result()
    assert set(statuses) <= {401, 429, 503} and statuses.count(429) > statuses.count(401)
    assert max(took) < 2.0, took
    assert peak[0] - before < 300, (before, peak[0])
