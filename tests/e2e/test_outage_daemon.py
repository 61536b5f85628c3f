"""Issue 13 item 10 (re-review): during a database outage every protocol answers at once.

Before, with another process holding SQLite's write lock, requests queued on the one connection
and were answered one per busy timeout (10 s): most clients, SMTP and IMAP included, got no
answer within 40 s. Now the first failure opens the breaker (tau.storage.breaker) and everything
else is refused at once: HTTP 503 + Retry-After, IMAP ``NO [UNAVAILABLE]``, SMTP ``451 4.3.0``
(never a 250), on SQLite (the write lock held for real) and PostgreSQL (the TCP path cut for real),
and all of it works again once the database is back.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import engines
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.e2e
ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20260101T000000Z\r\nDTSTART:20260301T100000Z\r\nDURATION:PT1H\r\nSUMMARY:x\r\n"
         "END:VEVENT\r\nEND:VCALENDAR\r\n")
FIRST = 12.0   # the first failure: the busy timeout (5 s) plus a loaded machine's slack
PROMPT = 4.0   # everything after it: refused at once (slack for 2 shared cores included)


class Env:
    def __init__(self, daemon: TauDaemon, proxy: TcpProxy | None) -> None:
        self.daemon, self.proxy = daemon, proxy
        self.token = self.link = ""
        self.holder: sqlite3.Connection | None = None
        self.down = False

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
             auth: bool = True, timeout: float = 40) -> tuple[int, dict[str, str], bytes]:
        hdrs = {**({"Authorization": f"Bearer {self.token}"} if auth else {}), **(headers or {})}
        req = urllib.request.Request(self.daemon.url + path, data=body, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()

    def cut(self) -> None:
        self.down = True
        if self.proxy is not None:
            self.proxy.cut()
            return
        self.holder = sqlite3.connect(str(self.daemon.data / "tau.db"), isolation_level=None, timeout=30)
        self.holder.execute("BEGIN EXCLUSIVE")  # what the attacker held: every writer waits, then "locked"

    def restore(self) -> None:
        if not self.down:
            return
        self.down = False
        if self.proxy is not None:
            self.proxy.restore()
        elif self.holder is not None:
            self.holder.execute("ROLLBACK")
            self.holder.close()
            self.holder = None


@pytest.fixture(scope="module", params=engines())
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp(f"outage-{request.param}")
    proxy = url = None
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres_db")
        pg.truncate_all()
        proxy = TcpProxy(("127.0.0.1", 5432)).start()
        url = pg.url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    daemon = TauDaemon(folder, database_url=url, listeners=("http", "smtp", "imap"),
                       extra={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0"}).init()
    daemon.cli("user", "add", ALICE, "--admin", "--password-stdin", input=PASSWORD.encode() + b"\n")
    daemon.add_user(BOB, PASSWORD)
    daemon.start()
    e = Env(daemon, proxy)
    e.token = daemon.token(ALICE, PASSWORD)
    assert e.call("PUT", f"/dav/files/{ALICE}/shared.txt", b"shared")[0] == 201
    items = json.loads(e.call("GET", "/api/files?path=/")[2])["items"]
    file_id = next(i["id"] for i in items if i["name"] == "shared.txt")
    status, _, body = e.call("POST", "/api/shares", json.dumps({"file_id": file_id}).encode(),
                             {"Content-Type": "application/json"})
    assert status in (200, 201), body
    e.link = json.loads(body)["token"]
    try:
        yield e
    finally:
        e.restore()
        daemon.stop()
        if proxy is not None:
            proxy.cut()


def http_requests(env: Env, n: int) -> dict[str, Callable[[], tuple[int, dict[str, str], bytes]]]:
    """Requests of every kind the re-review saw queue: each a write or a read behind one."""
    json_ct = {"Content-Type": "application/json"}
    event = json.dumps({"summary": "o", "start": "2027-01-01T00:00:00Z", "end": "2027-01-01T01:00:00Z"}).encode()
    return {
        "DAV PUT": lambda: env.call("PUT", f"/dav/files/{ALICE}/during{n}.txt", b"x" * 100),
        "DAV PROPFIND": lambda: env.call("PROPFIND", f"/dav/files/{ALICE}/", headers={"Depth": "1"}),
        "CalDAV PUT": lambda: env.call("PUT", f"/dav/calendars/{ALICE}/calendar/o{n}.ics",
                                       EVENT.format(uid=f"o{n}").encode(), {"Content-Type": "text/calendar"}),
        "REST files": lambda: env.call("GET", "/api/files?path=/"),
        "REST emails": lambda: env.call("GET", "/api/emails?mailbox=INBOX"),
        "REST events POST": lambda: env.call("POST", "/api/events", event, json_ct),
        "REST upload": lambda: env.call("POST", f"/api/files?path=/rest{n}.txt", b"r"),
        "token endpoint": lambda: env.call(
            "POST", "/oauth2/token", f"grant_type=password&username={BOB}&password={PASSWORD}".encode(),
            {"Content-Type": "application/x-www-form-urlencoded"}, auth=False),
        "share link": lambda: env.call("GET", f"/s/{env.link}", auth=False),
        "admin users": lambda: env.call("GET", "/api/admin/users"),
        "chat POST": lambda: env.call("POST", "/api/conversations", json.dumps({"members": [BOB]}).encode(), json_ct),
    }


class Lines:
    """A line-oriented client over a real socket."""

    def __init__(self, port: int, timeout: float = 40) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed after {self.buf!r}")
            self.buf += chunk
        out, self.buf = self.buf.split(b"\r\n", 1)
        return out

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def smtp_reply(c: Lines) -> bytes:
    while (line := c.line())[3:4] == b"-":
        pass
    return line


def smtp_deliver(env: Env) -> list[bytes]:
    """An MX delivery to alice; the replies up to the first that is not a success."""
    c = Lines(env.daemon.ports["smtp"])
    try:
        replies = [smtp_reply(c)]
        for cmd in (b"EHLO remote.test", b"MAIL FROM:<x@remote.test>", f"RCPT TO:<{ALICE}>".encode(), b"DATA"):
            if replies[-1][:1] not in (b"2", b"3"):
                return replies
            c.send(cmd + b"\r\n")
            replies.append(smtp_reply(c))
        if replies[-1][:3] == b"354":
            c.send(b"Subject: outage\r\n\r\nbody\r\n.\r\n")
            replies.append(smtp_reply(c))
        c.send(b"QUIT\r\n")
        return replies
    finally:
        c.close()


def imap_login_select(env: Env) -> list[bytes]:
    """LOGIN then SELECT INBOX: the tagged replies."""
    c = Lines(env.daemon.ports["imap"])
    try:
        assert c.line().startswith(b"* OK")
        out = []
        for tag, cmd in ((b"a", f"LOGIN {ALICE} {PASSWORD}".encode()), (b"b", b"SELECT INBOX")):
            c.send(tag + b" " + cmd + b"\r\n")
            while not (line := c.line()).startswith(tag + b" "):
                pass
            out.append(line)
            if not line.startswith(tag + b" OK"):
                break
        c.send(b"z LOGOUT\r\n")
        return out
    finally:
        c.close()


def concurrently(calls: dict[str, Callable[[], Any]]) -> dict[str, tuple[Any, float]]:
    """Run every call at once: name -> (result or exception, seconds it took)."""
    results: dict[str, tuple[Any, float]] = {}

    def one(name: str, fn: Callable[[], Any]) -> None:
        started = time.monotonic()
        try:
            out: Any = fn()
        except Exception as exc:  # noqa: BLE001 - a timeout is a finding, reported below
            out = exc
        results[name] = (out, time.monotonic() - started)

    threads = [threading.Thread(target=one, args=item) for item in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def assert_all_refused(results: dict[str, tuple[Any, float]], within: float) -> None:
    for name, (out, took) in results.items():
        assert not isinstance(out, Exception), (name, out, took)
        if name == "SMTP":
            assert out[-1][:1] == b"4" and out[-1][4:9] == b"4.3.0", out   # nothing accepted: try later
            assert not any(r.startswith(b"250 ") for r in out[4:]), out
        elif name == "IMAP":
            assert out[-1].startswith((b"a NO [UNAVAILABLE]", b"b NO [UNAVAILABLE]")), out
        else:
            status, headers, body = out
            assert status == 503, (name, status, body[:300])
            assert headers.get("retry-after", "").isdigit(), (name, headers)
        assert took < within, (name, took)


def test_every_protocol_answers_an_outage_at_once_and_recovers(env: Env) -> None:
    mark = env.daemon.log.stat().st_size
    env.cut()
    try:
        # the first request meets the outage (SQLite: after the busy timeout) and opens the breaker
        first = concurrently({"DAV PUT": http_requests(env, 0)["DAV PUT"]})
        assert_all_refused(first, FIRST)
        # from now on: every kind of request, SMTP and IMAP at once, refused at once (twice: the
        # probes that run meanwhile do not let anything queue)
        for n in (1, 2):
            calls: dict[str, Callable[[], Any]] = dict(http_requests(env, n))
            calls.update({"SMTP": lambda: smtp_deliver(env), "IMAP": lambda: imap_login_select(env)})
            assert_all_refused(concurrently(calls), PROMPT)
            time.sleep(1.2)
    finally:
        env.restore()
    deadline = time.monotonic() + 30
    while (status := env.call("PUT", f"/dav/files/{ALICE}/after.txt", b"back")[0]) == 503 and \
            time.monotonic() < deadline:
        time.sleep(0.3)
    assert status in (201, 204)
    after = concurrently({**http_requests(env, 9), "SMTP": lambda: smtp_deliver(env),
                          "IMAP": lambda: imap_login_select(env)})
    for name, (out, _) in after.items():
        assert not isinstance(out, Exception), (name, out)
        if name == "SMTP":
            assert out[-1].startswith(b"250 "), out
        elif name == "IMAP":
            assert out[-1].startswith(b"b OK"), out
        else:
            assert out[0] in (200, 201, 204, 207), (name, out[0], out[2][:300])
    for n in (1, 2):  # nothing was half-stored during the outage
        assert env.call("GET", f"/dav/files/{ALICE}/during{n}.txt")[0] == 404
    records = [json.loads(line) for line in env.daemon.log.read_bytes()[mark:].splitlines()
               if line.startswith(b"{")]
    crit = [r for r in records if r.get("level") == "critical" and r.get("ns", "").startswith("tau.")]
    assert not crit, crit[:3]
