"""Mail encrypted at rest, end to end: what SMTP delivered, IMAP named and appended is nowhere in
the stored bytes (SQLite file and WAL, a pg_dump, a ``tau backup`` archive), and IMAP and REST
still find it; a key rotation under traffic loses nothing."""

from __future__ import annotations

import imaplib
import json
import shutil
import smtplib
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.support.atrest import markers_in, markers_in_archive, markers_in_files
from tests.support.daemon import TauDaemon
from tests.support.databases import FreshDatabases, PostgresDatabase, engines

ALICE, BOB = "alice@example.test", "bob@example.test"
PASSWORD = "secret-Pa55"
TAG = uuid.uuid4().hex[:8]
M = {
    "subject": f"Quokkasubj{TAG}",
    "body": f"Wombatbody{TAG}",
    "display": f"Numbatname{TAG}",
    "folder": f"Bilbyfolder{TAG}",
    "appended": f"Dugongappend{TAG}",
    "vacation": f"Potoroovacation{TAG}",
}
pytestmark = pytest.mark.e2e


def _raw(subject: str, body: str, display: str, to: str = ALICE) -> bytes:
    return (f"From: {display} <sender@remote.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@remote.test>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\n"
            f"Hello,\r\nthe {body} is here.\r\n").encode()


@pytest.fixture(scope="module", params=engines())
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp(f"atrest-mail-{request.param}")
    pg: list[PostgresDatabase] = []

    def postgres() -> PostgresDatabase:
        pg.append(PostgresDatabase())
        return pg[-1]

    fresh = FreshDatabases(request.param, folder, postgres)
    url = fresh.make() if request.param == "postgres" else None
    d = TauDaemon(folder, database_url=url, listeners=("smtp", "imap", "http"))
    d.init()
    d.add_user(ALICE, PASSWORD)
    d.add_user(BOB, PASSWORD)
    d.start("smtp")
    with smtplib.SMTP("127.0.0.1", d.ports["smtp"]) as s:  # one content for two users: a shared blob
        s.sendmail("sender@remote.test", [ALICE, BOB], _raw(M["subject"], M["body"], M["display"]))
    imap = _login(d)
    assert imap.create(M["folder"])[0] == "OK"
    assert imap.append(M["folder"], "", None, _raw(M["appended"], "plain words", "Someone"))[0] == "OK"
    imap.logout()
    vacation = {"enabled": True, "subject": "Away", "text": f"Back soon, {M['vacation']}.", "until": "2099-01-01"}
    status, _, body = d.http("PUT", "/api/vacation", json.dumps(vacation).encode(),
                             {"Content-Type": "application/json"}, token=d.token(ALICE))
    assert status == 200, body
    try:
        yield {"daemon": d, "engine": request.param, "url": url, "folder": folder}
    finally:
        d.stop()
        fresh.drop()
        for db in pg:
            db.drop()


def _login(d: TauDaemon, user: str = ALICE) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", d.ports["imap"])
    imap.login(user, PASSWORD)
    return imap


def _search(imap: imaplib.IMAP4, *criteria: str) -> list[int]:
    typ, data = imap.uid("SEARCH", *criteria)
    assert typ == "OK", data
    return [int(x) for x in data[0].split()]


def test_imap_search_finds_sealed_text_by_word_and_word_prefix(world: dict[str, Any]) -> None:
    imap = _login(world["daemon"])
    imap.select("INBOX")
    assert _search(imap, "SUBJECT", M["subject"]) == [1]
    assert _search(imap, "SUBJECT", M["subject"][:7]) == [1]           # a word's beginning
    assert _search(imap, "BODY", f'"the {M["body"].lower()} is"') == [1]  # phrase, any case
    assert _search(imap, "FROM", M["display"]) == [1]
    assert _search(imap, "FROM", "sender@remote") == [1]
    assert _search(imap, "TEXT", M["body"]) == [1]
    assert _search(imap, "HEADER", "Subject", M["subject"]) == [1]
    assert _search(imap, "NOT", "BODY", M["body"]) == []
    assert _search(imap, "BODY", f"{M['body']}x") == []
    assert _search(imap, "SUBJECT", M["appended"]) == []               # another mailbox's
    typ, data = imap.uid("SORT", "(SUBJECT)", "UTF-8", "ALL")
    assert typ == "OK" and data[0].split() == [b"1"]
    imap.select(M["folder"])
    assert _search(imap, "SUBJECT", M["appended"]) == [1]
    typ, names = imap.list()
    assert typ == "OK" and any(M["folder"].encode() in n for n in names)
    imap.logout()


def test_rest_search_finds_sealed_text(world: dict[str, Any]) -> None:
    d = world["daemon"]
    token = d.token(BOB)
    status, body = _get(d, f"/api/emails?mailbox=INBOX&q={quote(M['body'])}", token)
    assert status == 200 and [i["subject"] for i in body["items"]] == [M["subject"]]
    status, body = _get(d, "/api/emails?mailbox=INBOX&q=zzznothing", token)
    assert status == 200 and body["items"] == []


def _get(d: TauDaemon, path: str, token: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(d.url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_a_sealed_sieve_script_still_reads_back(world: dict[str, Any]) -> None:
    d = world["daemon"]
    status, _, body = d.http("GET", "/api/vacation", token=d.token(ALICE))
    assert status == 200 and M["vacation"] in json.loads(body)["text"]


def test_no_marker_in_any_stored_byte(world: dict[str, Any]) -> None:
    """The data directory (SQLite file, -wal, -shm, blobs), a pg_dump of the database and a
    ``tau backup`` archive hold none of the markers."""
    d: TauDaemon = world["daemon"]
    assert markers_in_files([d.data], M.values()) == {}
    if world["engine"] == "postgres":
        url = world["url"]
        schema = url.split("search_path%3D")[1]
        parts = urlsplit(url)
        dump = subprocess.run([shutil.which("pg_dump") or "pg_dump", "--no-owner", "-n", schema,
                               f"{parts.scheme}://{parts.netloc}{parts.path}"], capture_output=True, timeout=120)
        assert dump.returncode == 0, dump.stderr
        assert len(dump.stdout) > 10_000 and markers_in(dump.stdout, M.values()) == []
    archive = world["folder"] / f"backup-{uuid.uuid4().hex[:6]}.tar.gz"
    d.cli("backup", str(archive))
    assert markers_in_archive(archive, M.values()) == {}
    archive.unlink()


def test_tau_check_reports_nothing_left_in_plaintext(world: dict[str, Any]) -> None:
    out = world["daemon"].cli("check", check=False).stdout.decode()
    assert "every row of user content is sealed" in out, out


def test_key_rotation_under_smtp_and_imap_traffic_loses_nothing(world: dict[str, Any]) -> None:
    """SMTP deliveries and IMAP APPEND/SEARCH/FETCH run while ``tau keys rotate`` does; then every
    message reads and searches, and after a restart (the converter runs at start) nothing is left
    under the retired key."""
    d: TauDaemon = world["daemon"]
    errors: list[BaseException] = []
    stop = threading.Event()
    sent: list[str] = []

    def smtp() -> None:
        try:
            with smtplib.SMTP("127.0.0.1", d.ports["smtp"]) as s:
                i = 0
                while not stop.is_set() or i < 5:
                    marker = f"rot{TAG}n{i}"
                    s.sendmail("sender@remote.test", [BOB], _raw(f"Rotation {marker}", marker, "Rot"))
                    sent.append(marker)
                    i += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def imap() -> None:
        try:
            c = _login(d, BOB)
            c.select("INBOX")
            i = 0
            while not stop.is_set() or i < 5:
                assert c.append("INBOX", "", None, _raw(f"Appended r{TAG}a{i}", "x", "Y"))[0] == "OK"
                assert _search(c, "SUBJECT", M["subject"]) == [1]
                typ, _ = c.uid("FETCH", "1:*", "(ENVELOPE)")
                assert typ == "OK"
                i += 1
            c.logout()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=smtp), threading.Thread(target=imap)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    rotated = json.loads(d.cli("keys", "rotate", "--json").stdout)
    assert rotated["users"] >= 2
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors, errors
    c = _login(d, BOB)
    c.select("INBOX")
    for marker in sent:
        assert len(_search(c, "BODY", f'"{marker} is"')) == 1, marker  # n1 is a prefix of n10
    typ, data = c.uid("FETCH", "1:*", "(ENVELOPE)")
    assert typ == "OK" and sum(1 for x in data if isinstance(x, bytes) and b"ENVELOPE" in x) >= len(sent) + 6
    c.logout()
    d.stop()
    d.start("smtp")
    deadline = time.monotonic() + 60
    while True:
        pending = json.loads(d.cli("keys", "status", "--json").stdout)["pending_rows"]
        if not any(pending.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert not any(pending.values()), pending
    c = _login(d, BOB)
    c.select("INBOX")
    assert _search(c, "BODY", sent[0]) and _search(c, "SUBJECT", M["subject"]) == [1]
    c.logout()
