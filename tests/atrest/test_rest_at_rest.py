"""Issue 16, acceptance for what was left readable: a Sieve script named with a marker (over
ManageSieve), a queued message that fails with a remote reply holding a marker, and a WebDAV dead
property holding a marker are nowhere in the stored bytes (the data dir with the SQLite file and
its WAL, a ``pg_dump``, a ``tau backup`` archive), and still show through ManageSieve, ``tau queue
show``, ``/api/admin/queue`` and PROPFIND."""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sievelib.managesieve import Client

from tests.support.atrest import archive_bytes, leaks, marker, pg_dump_bytes, tree_bytes
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.outbound import RemotePeer

pytestmark = pytest.mark.e2e
ALICE, ADMIN, PASSWORD = "alice@example.test", "admin@example.test", "secret-Pa55"
KINDS = ("script", "diag", "prop")


@pytest.fixture(scope="module", params=engines())
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp(f"atrest-rest-{request.param}")
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("smtp", "submission", "http", "managesieve"))
    d.init()
    d.add_user(ALICE, PASSWORD)
    d.cli("user", "add", ADMIN, "--admin", "--password-stdin", input=PASSWORD.encode() + b"\n")
    zone = {"remote.test": [["MX", 10, "mx.remote.test"]], "mx.remote.test": [["A", "127.0.0.1"]]}
    peer = RemotePeer(folder / "peer", zone).start()
    d.env.update({"TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{peer.dns_port}", "TAU_OUTBOUND_PORT": str(peer.smtp_port),
                  "TAU_OUTBOUND_POLL_INTERVAL": "1", "TAU_OUTBOUND_RETRY_BASE": "1"})
    d.start("smtp")
    marks = {k: marker(k) for k in KINDS}
    (peer.out / "diagnostic").write_text(f"mailbox {marks['diag']} is unknown here")
    try:
        yield {"daemon": d, "marks": marks, "url": url, "queue_id": write_everything(d, marks)}
    finally:
        d.stop()
        peer.stop()


def _sieve(d: TauDaemon) -> Client:
    client = Client("127.0.0.1", d.ports["managesieve"])
    assert client.connect(ALICE, PASSWORD, authmech="PLAIN")
    return client


def _submit(d: TauDaemon, rcpt: str, subject: str) -> None:
    body = (f"From: {ALICE}\r\nTo: {rcpt}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.test>\r\n"
            "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\nHello.\r\n").encode()
    ctx = ssl.create_default_context(cafile=str(d.data / "tls/cert.pem"))
    with smtplib.SMTP("localhost", d.ports["submission"], timeout=10) as s:
        s.starttls(context=ctx)
        s.login(ALICE, PASSWORD)
        s.sendmail(ALICE, [rcpt], body)


def _queue_rows(d: TauDaemon) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(d.cli("queue", "list", "--json").stdout)
    return rows


def write_everything(d: TauDaemon, m: dict[str, str]) -> int:
    client = _sieve(d)
    assert client.putscript(m["script"], "keep;\r\n")
    assert client.setactive(m["script"])
    client.logout()
    _submit(d, "reject-me@remote.test", "atrest-queue")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        failed = [r for r in _queue_rows(d) if r["message_id"] == "<atrest-queue@example.test>"
                  and r["state"] == "failed"]
        if failed:
            break
        time.sleep(0.3)
    assert failed, _queue_rows(d)
    token = d.token(ALICE, PASSWORD)
    patch = ('<D:propertyupdate xmlns:D="DAV:" xmlns:X="urn:example:tests"><D:set><D:prop>'
             f"<X:note>{m['prop']}</X:note></D:prop></D:set></D:propertyupdate>")
    status, _, out = d.http("MKCOL", f"/dav/files/{ALICE}/notes/", None, {}, token=token)
    assert status == 201, out
    status, _, out = d.http("PROPPATCH", f"/dav/files/{ALICE}/notes/", patch.encode(),
                            {"Content-Type": "application/xml"}, token=token)
    assert status == 207 and b"200" in out, out
    return int(failed[0]["id"])


def test_a_sealed_script_name_lists_and_reads_by_name_over_managesieve(world: dict[str, Any]) -> None:
    client = _sieve(world["daemon"])
    active, _ = client.listscripts()
    assert active == world["marks"]["script"]
    assert client.getscript(world["marks"]["script"]).strip() == "keep;"
    client.logout()


def test_the_remote_reply_shows_opened_in_tau_queue_and_the_admin_api(world: dict[str, Any]) -> None:
    d, diag, qid = world["daemon"], world["marks"]["diag"], world["queue_id"]
    shown = d.cli("queue", "show", str(qid)).stdout.decode()
    assert diag in shown, shown
    status, _, body = d.http("GET", f"/api/admin/queue/{qid}", token=d.token(ADMIN, PASSWORD))
    row = json.loads(body)
    assert status == 200 and diag in row["last_error"]
    assert diag in row["recipients"]["reject-me@remote.test"]["text"]


def test_a_dead_property_reads_back_through_propfind(world: dict[str, Any]) -> None:
    d = world["daemon"]
    query = '<D:propfind xmlns:D="DAV:" xmlns:X="urn:example:tests"><D:prop><X:note/></D:prop></D:propfind>'
    status, _, out = d.http("PROPFIND", f"/dav/files/{ALICE}/notes/", query.encode(), {"Depth": "0"},
                            token=d.token(ALICE, PASSWORD))
    assert status == 207 and world["marks"]["prop"].encode() in out, out


def test_no_marker_in_the_data_dir_a_pg_dump_or_a_backup(world: dict[str, Any], tmp_path: Path) -> None:
    d, m = world["daemon"], world["marks"]
    archive = tmp_path / "backup.tar.gz"
    d.cli("backup", str(archive), "--quiet")
    sources = [tree_bytes(d.data), archive_bytes(archive)]
    if world["url"]:
        sources.append(pg_dump_bytes(world["url"]))
    assert leaks(m.values(), *sources) == []


def test_tau_check_reports_nothing_left_in_plaintext(world: dict[str, Any]) -> None:
    out = world["daemon"].cli("check", check=False).stdout.decode()
    assert "every row of user content is sealed" in out, out
