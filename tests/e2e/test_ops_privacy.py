"""Privacy acceptance on the real daemon: no connection leaves the host during a full run (every
``connect``/``sendto`` of the daemon traced with strace when available, and its sockets polled in
/proc either way); ``tau user export`` hands out mail, calendars, contacts (.vcf), files and messenger metadata;
``tau user delete --purge`` leaves no row naming the user and no blob of theirs."""

from __future__ import annotations

import base64
import http.client
import imaplib
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support import blobfiles
from tests.support.daemon import TauDaemon

pytestmark = pytest.mark.e2e

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
ENV = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0",
       "TAU_TRUST_SPF": "0", "TAU_TRUST_DMARC": "0", "TAU_DKIM_VERIFY": "0"}
_ADDR = re.compile(r'(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")')


def _loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "::", "0.0.0.0") or ip.startswith("::ffff:127.")


class ConnectionWatch:
    """Records every remote address the daemon tries to reach."""

    def __init__(self, pid: int, folder: Path) -> None:
        self.pid, self.remote = pid, set()
        self.trace = folder / "connect.trace"
        self.strace = None
        if shutil.which("strace"):
            self.strace = subprocess.Popen(["strace", "-f", "-qq", "-p", str(pid), "-e", "trace=connect,sendto,sendmsg",
                                            "-o", str(self.trace)], stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def _inodes(self) -> set[str]:
        out = set()
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
        return out

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                inodes = self._inodes()
                for table in ("tcp", "tcp6", "udp", "udp6"):
                    for line in Path(f"/proc/{self.pid}/net/{table}").read_text().splitlines()[1:]:
                        f = line.split()
                        if f[9] in inodes:
                            ip = _decode(f[2].split(":")[0])
                            if not _loopback(ip):
                                self.remote.add(f"{table} {ip}")
            except OSError:
                pass
            time.sleep(0.02)

    def stop(self) -> set[str]:
        self._stop.set()
        self._poller.join(5)
        if self.strace is not None:
            self.strace.terminate()
            self.strace.wait(10)
            for line in self.trace.read_text().splitlines() if self.trace.exists() else []:
                for v4, v6 in _ADDR.findall(line):
                    ip = v4 or v6
                    if ip and not _loopback(ip):
                        self.remote.add(line.strip()[:200])
        return self.remote


def _decode(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def stored_blobs(d: TauDaemon) -> set[str]:
    """Keys of the blobs stored, in files or live in packs (temporary files left out)."""
    root = d.data / "blobs"
    return {entry.removeprefix("packs:") if entry.startswith("packs:") else Path(entry).name
            for entry in blobfiles.stored_blobs(root)
            if entry.startswith("packs:") or Path(entry).relative_to(root).parts[0] != "tmp"}


def http_call(d: TauDaemon, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", d.ports["http"], timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_full_run_stays_on_loopback_then_export_and_purge(tmp_path: Path) -> None:
    d = TauDaemon(tmp_path / "tau", listeners=("smtp", "submission", "imap", "http"), extra=ENV)
    d.init()
    d.add_user(ALICE, PASSWORD)
    d.add_user(BOB, PASSWORD)
    d.start()
    try:
        watch = ConnectionWatch(d.proc.pid, tmp_path)  # type: ignore[union-attr]
        with smtplib.SMTP("127.0.0.1", d.ports["smtp"], timeout=30) as smtp:
            for who in (ALICE, BOB):
                smtp.sendmail("carol@remote.test", [who], f"From: carol@remote.test\r\nTo: {who}\r\n"
                              f"Subject: for {who}\r\n\r\nFrom the start of a line\r\nsecret of {who}\r\n")
        imap = imaplib.IMAP4("127.0.0.1", d.ports["imap"])
        imap.login(ALICE, PASSWORD)
        imap.select("INBOX")
        assert imap.fetch("1", "(BODY[])")[0] == "OK"
        imap.logout()
        auth = {"Authorization": "Basic " + base64.b64encode(f"{ALICE}:{PASSWORD}".encode()).decode()}
        assert http_call(d, "PUT", f"/dav/files/{ALICE}/notes/diary.txt", b"dear diary", auth)[0] in (201, 409)
        http_call(d, "MKCOL", f"/dav/files/{ALICE}/notes", None, auth)
        assert http_call(d, "PUT", f"/dav/files/{ALICE}/notes/diary.txt", b"dear diary", auth)[0] in (201, 204)
        status, body = http_call(d, "POST", "/oauth2/token", urlencode(
            {"grant_type": "password", "username": ALICE, "password": PASSWORD}).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"})
        bearer = {"Authorization": "Bearer " + json.loads(body)["access_token"], "Content-Type": "application/json"}
        event = {"summary": "Dentist", "start": "2031-05-01T09:00:00Z", "end": "2031-05-01T10:00:00Z"}
        assert http_call(d, "POST", "/api/events", json.dumps(event).encode(), bearer)[0] == 201
        contact = {"name": "Zelda Zahnarzt", "emails": ["zelda@dentist.example"]}
        assert http_call(d, "POST", "/api/contacts", json.dumps(contact).encode(), bearer)[0] == 201
        assert http_call(d, "POST", "/api/messages", json.dumps({"to": BOB, "body": "hi bob"}).encode(),
                         bearer)[0] == 201
        assert http_call(d, "GET", "/api/health")[0] == 200
        time.sleep(1.5)  # background timers (queue polls, sweeps) get their turn
        remote = watch.stop()
        assert not remote, f"connections outside loopback: {sorted(remote)}"

        export = tmp_path / "alice.tar.gz"
        out = d.cli("user", "export", ALICE, str(export)).stdout.decode()
        assert "wrote" in out
        with tarfile.open(export) as tar:
            names = tar.getnames()
            inbox = tar.extractfile("mail/INBOX.mbox").read()  # type: ignore[union-attr]
            ics = tar.extractfile([n for n in names if n.startswith("calendars/")][0]).read()  # type: ignore
            diary = tar.extractfile("files/notes/diary.txt").read()  # type: ignore[union-attr]
            vcf = tar.extractfile("contacts/contacts.vcf").read()  # type: ignore[union-attr]
            convs = json.loads(tar.extractfile("messenger/conversations.json").read())  # type: ignore
        assert inbox.startswith(b"From MAILER-DAEMON ") and b"secret of alice" in inbox
        assert b"secret of bob" not in inbox
        assert b"\n>From the start of a line" in inbox  # mboxrd quoting
        assert b"SUMMARY:Dentist" in ics and diary == b"dear diary"
        assert vcf.startswith(b"BEGIN:VCARD") and b"FN:Zelda Zahnarzt" in vcf
        assert convs and BOB in convs[0]["members"] and convs[0]["messages"][0]["from_me"]

        blobs_before = stored_blobs(d)
        out = d.cli("user", "delete", ALICE, "--purge", "--yes").stdout.decode()
        assert "purged" in out
        blobs_after = stored_blobs(d)
        assert len(blobs_after) < len(blobs_before)
        dump = tmp_path / "after.tar.gz"
        d.cli("backup", str(dump), "--quiet")
        with tarfile.open(dump) as tar:
            for member in tar.getmembers():
                if member.name.startswith("db/"):
                    text = tar.extractfile(member).read()  # type: ignore[union-attr]
                    assert b"alice@example.test" not in text and b"secret of alice" not in text, member.name
                    assert b"dear diary" not in text and b"Dentist" not in text and b"hi bob" not in text
                    assert b"Zelda" not in text and b"zelda@dentist" not in text
            kept = {n.split("/", 1)[1] for n in tar.getnames() if n.startswith("blobs/")}
        assert blobs_after == kept  # every blob left is still referenced (bob's)
        imap = imaplib.IMAP4("127.0.0.1", d.ports["imap"])
        imap.login(BOB, PASSWORD)
        imap.select("INBOX")
        typ, data = imap.fetch("1", "(BODY[])")
        assert typ == "OK" and b"secret of bob" in data[0][1]
        imap.logout()
    finally:
        d.stop()
