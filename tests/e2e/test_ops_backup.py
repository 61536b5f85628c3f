"""Acceptance: ``tau backup`` during SMTP load, then ``tau restore`` into PostgreSQL (from SQLite):
every message, event, file and account present, IMAP UIDs/UIDVALIDITY and DAV ETags unchanged."""

from __future__ import annotations

import base64
import http.client
import imaplib
import json
import re
import smtplib
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import PostgresDatabase, engines

pytestmark = pytest.mark.e2e

ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
ENV = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0",
       "TAU_TRUST_SPF": "0", "TAU_TRUST_DMARC": "0", "TAU_DKIM_VERIFY": "0"}


def send(d: TauDaemon, n: int, tag: str) -> None:
    with smtplib.SMTP("127.0.0.1", d.ports["smtp"], timeout=30) as smtp:
        for i in range(n):
            smtp.sendmail("bob@remote.test", [ALICE], f"From: bob@remote.test\r\nTo: {ALICE}\r\n"
                          f"Message-ID: <{tag}-{i}@remote.test>\r\nSubject: {tag} {i}\r\n\r\nbody {i}\r\n")


def http_call(d: TauDaemon, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", d.ports["http"], timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def token(d: TauDaemon) -> str:
    status, _, body = http_call(d, "POST", "/oauth2/token", urlencode(
        {"grant_type": "password", "username": ALICE, "password": PASSWORD}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, body
    return json.loads(body)["access_token"]


def mailbox(d: TauDaemon) -> tuple[int, dict[int, str]]:
    """(UIDVALIDITY, {uid: Message-ID}) of alice's INBOX."""
    imap = imaplib.IMAP4("127.0.0.1", d.ports["imap"])
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX", readonly=True)
    validity = int(imap.response("UIDVALIDITY")[1][0])
    typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    imap.logout()
    out: dict[int, str] = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))  # type: ignore[union-attr]
            out[uid] = item[1].decode().strip()
    return validity, out


def etag(d: TauDaemon, path: str) -> str:
    auth = base64.b64encode(f"{ALICE}:{PASSWORD}".encode()).decode()
    status, headers, _ = http_call(d, "HEAD", f"/dav/files/{ALICE}/{path}", headers={"Authorization": f"Basic {auth}"})
    assert status == 200, status
    return headers["etag"]


@pytest.mark.skipif("postgres" not in engines(), reason="needs PostgreSQL (TAU_TEST_ENGINES)")
def test_backup_under_smtp_load_restores_into_postgres(tmp_path: Path) -> None:
    source = TauDaemon(tmp_path / "source", listeners=("smtp", "imap", "http"), extra=ENV)
    pg = PostgresDatabase("tau_ops_restore")
    target = TauDaemon(tmp_path / "target", database_url=pg.url, listeners=("smtp", "imap", "http"), extra=ENV)
    try:
        source.init()
        source.add_user(ALICE, PASSWORD)
        source.start(wait_for="http")
        send(source, 20, "before")
        auth = base64.b64encode(f"{ALICE}:{PASSWORD}".encode()).decode()
        status, _, _ = http_call(source, "PUT", f"/dav/files/{ALICE}/report.txt", b"quarterly numbers" * 1000,
                                 {"Authorization": f"Basic {auth}"})
        assert status == 201
        bearer = {"Authorization": f"Bearer {token(source)}", "Content-Type": "application/json"}
        status, _, body = http_call(source, "POST", "/api/events", json.dumps(
            {"summary": "Board meeting", "start": "2030-01-02T10:00:00Z", "end": "2030-01-02T11:00:00Z"}).encode(),
            bearer)
        assert status == 201, body
        event = json.loads(body)

        stop = threading.Event()
        sent: list[int] = []

        def load() -> None:
            i = 0
            while not stop.is_set():
                send(source, 5, f"load{i}")
                sent.append(5)
                i += 1

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(0.5)
        archive = tmp_path / "backup.tar.gz"
        out = source.cli("backup", str(archive), "--quiet").stdout.decode()
        assert "wrote" in out
        time.sleep(0.3)
        stop.set()
        loader.join(30)
        assert sum(sent) >= 5, "the SMTP load did not run during the backup"
        assert "OK" in source.cli("backup", "--verify", str(archive)).stdout.decode()

        validity, source_box = mailbox(source)
        source_etag = etag(source, "report.txt")

        restored = target.cli("restore", str(archive), "--quiet").stdout.decode()
        assert "restored" in restored
        target.start(wait_for="http")
        t_validity, target_box = mailbox(target)
        assert t_validity == validity
        # every message in the snapshot came back under the same UID; the 20 sent before are there
        assert target_box and all(source_box.get(uid) == mid for uid, mid in target_box.items())
        assert {f"Message-ID: <before-{i}@remote.test>" for i in range(20)} <= set(target_box.values())
        assert etag(target, "report.txt") == source_etag
        status, _, body = http_call(target, "GET", f"/dav/files/{ALICE}/report.txt",
                                    headers={"Authorization": f"Basic {auth}"})
        assert status == 200 and body == b"quarterly numbers" * 1000
        bearer = {"Authorization": f"Bearer {token(target)}"}
        status, _, body = http_call(target, "GET", "/api/events?from=2030-01-01T00:00:00Z&to=2030-01-03T00:00:00Z",
                                    headers=bearer)
        assert status == 200 and event["id"] in [e["id"] for e in json.loads(body)["items"]]
        # the restored server keeps working: new mail gets the next UID
        send(target, 1, "after")
        _, after = mailbox(target)
        assert max(after) > max(target_box)
        listed = target.cli("user", "list", "--json").stdout.decode()
        assert ALICE in listed
    finally:
        source.stop()
        target.stop()
        pg.drop()
