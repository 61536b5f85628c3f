"""SMTP against the real daemon (``twistd -n tau``) with real clients: smtplib, raw sockets, swaks.

Every delivery is checked through the mail store of the daemon's data dir (SQLite or PostgreSQL).
"""

from __future__ import annotations

import base64
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.blobfiles import stored_blobs
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.smtp import DaemonStore, dot_stuff, strip_trace

pytestmark = pytest.mark.e2e

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
SIZE_LIMIT = 1_000_000


@pytest.fixture(scope="module", params=engines())
def daemon(request, tmp_path_factory):
    url = daemon_database_url(request)
    d = TauDaemon(tmp_path_factory.mktemp(f"smtp-{request.param}"), database_url=url,
                  listeners=("smtp", "submission", "submissions", "http"),
                  extra={"TAU_LIMITS_MESSAGE_SIZE": str(SIZE_LIMIT)})
    d.init()
    d.add_user(ALICE)
    d.add_user(BOB)
    d.start("smtp")
    yield d
    d.stop()


@pytest.fixture(scope="module")
def store(daemon):
    s = DaemonStore(daemon)
    yield s
    s.close()


@pytest.fixture(scope="module")
def tls(daemon) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(daemon.data / "tls/cert.pem"))


def mail(subject: str, sender: str = "someone@remote.test", to: str = ALICE, body: str = "Hello.\r\n") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@e2e.test>\r\n"
            f"Date: Mon, 24 Nov 2025 10:00:00 +0000\r\n\r\n{body}").encode()


def find(store: DaemonStore, user: str, subject: str, mailbox: str = "INBOX") -> list[bytes]:
    needle = f"\r\nSubject: {subject}\r\n".encode()
    return [m for m in store.messages(user, mailbox) if needle in m]


def submission(daemon, tls) -> smtplib.SMTP:
    s = smtplib.SMTP("localhost", daemon.ports["submission"], timeout=10)
    s.starttls(context=tls)
    s.ehlo()
    return s


class Raw:
    """A plain socket client for what smtplib will not do (pipelining, cutting off, garbage)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.reply()[0] == 220

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("closed")
            lines.append(line.decode().rstrip("\r\n"))
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.file.close()           # the makefile() keeps the socket open otherwise
        self.sock.close()


def blob_files(store: DaemonStore) -> list[str]:
    return stored_blobs(store.blob_root)


# -- MX ---------------------------------------------------------------------------------------

def test_mx_delivery_with_smtplib(daemon, store):
    body = mail("mx-smtplib", body="line\r\n.starts with a dot\r\n")
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as s:
        assert s.ehlo()[0] == 250
        for keyword in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking",
                        "starttls"):
            assert s.has_extn(keyword), keyword
        assert s.esmtp_features["size"] == str(SIZE_LIMIT) and not s.has_extn("auth")
        assert s.sendmail("someone@remote.test", [ALICE], body) == {}
    [raw] = find(store, ALICE, "mx-smtplib")
    assert raw.startswith(b"Return-Path: <someone@remote.test>\r\nReceived: from ")
    assert strip_trace(raw) == body
    assert find(store, BOB, "mx-smtplib") == []            # the other user sees nothing


def test_mx_refuses_relay_and_unknown_users(daemon, store):
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as s, \
            pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        s.sendmail(ALICE, ["nobody@example.test", "victim@elsewhere.test"], mail("refused"))
    codes = {rcpt: code for rcpt, (code, _) in refused.value.recipients.items()}
    assert codes == {"nobody@example.test": 550, "victim@elsewhere.test": 554}
    assert store.query("SELECT COUNT(*) FROM outbound_queue WHERE rcpt_to LIKE '%victim%'") == [(0,)]


def test_pipelining_and_bdat_over_a_socket(daemon, store):
    c = Raw(daemon.ports["smtp"])
    c.send(b"EHLO pipe.remote.test\r\n")
    assert "PIPELINING" in c.reply()[1]
    c.send(f"MAIL FROM:<p@remote.test>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n".encode())
    assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    body = mail("pipelined", to=ALICE)
    c.send(dot_stuff(body) + b".\r\nMAIL FROM:<p@remote.test>\r\nRCPT TO:<" + ALICE.encode() + b">\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 250]
    chunk = mail("chunked")
    c.send(b"BDAT %d LAST\r\n%s" % (len(chunk), chunk))
    assert c.reply()[0] == 250
    c.send(b"QUIT\r\n")
    assert c.reply()[0] == 221
    c.close()
    assert strip_trace(find(store, ALICE, "pipelined")[0]) == body
    assert strip_trace(find(store, BOB, "pipelined")[0]) == body
    assert strip_trace(find(store, ALICE, "chunked")[0]) == chunk


def test_bad_input_over_the_network(daemon):
    c = Raw(daemon.ports["smtp"])
    c.send(b"EHLO x\r\n")
    c.reply()
    c.send(b"\x00\x01\x02 binary garbage\r\n")
    assert c.reply()[0] == 500
    c.send(b"NOOP " + b"x" * 2000 + b"\r\n")
    assert c.reply() == (500, "500 5.5.2 Line too long")
    c.send(b"BOGUS\r\n" * 20)
    codes = [c.reply()[0] for _ in range(9)]
    assert codes == [500] * 8 + [421]                      # 10 errors: 421 and hang up
    with pytest.raises(ConnectionError):
        c.reply()


def test_bare_lf_and_nul_are_stored_normalised(daemon, store):
    c = Raw(daemon.ports["smtp"])
    c.send(f"EHLO x\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n".encode())
    assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    c.send(b"Subject: bare-lf\nX-Nul: a\x00b\n\nline\nline2\r\n.\r\n")
    assert c.reply()[0] == 250
    c.close()
    expected = b"Subject: bare-lf\r\nX-Nul: a\x00b\r\n\r\nline\r\nline2\r\n"
    assert strip_trace(find(store, ALICE, "bare-lf")[0]) == expected


def test_over_the_size_limit(daemon, store):
    before = blob_files(store)
    big = mail("too-big", body=("z" * 78 + "\r\n") * (SIZE_LIMIT // 80 + 100))
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as s:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:      # smtplib sends SIZE=
            s.sendmail("x@remote.test", [ALICE], big)
        assert refused.value.smtp_code == 552
    c = Raw(daemon.ports["smtp"])                                    # no SIZE: refused after the data
    c.send(f"EHLO x\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n".encode())
    assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    c.send(dot_stuff(big) + b".\r\n")
    code, text = c.reply()
    assert (code, text[4:9]) == (552, "5.3.4")
    c.close()
    # the aborted upload's temp file is removed by a worker thread, possibly just after the reply
    deadline = time.monotonic() + 5
    while blob_files(store) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert find(store, ALICE, "too-big") == [] and blob_files(store) == before


def test_disconnect_mid_data_stores_nothing(daemon, store):
    before = blob_files(store)
    c = Raw(daemon.ports["smtp"])
    c.send(f"EHLO x\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n".encode())
    assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    c.send(b"Subject: cut-off\r\n\r\n" + (b"y" * 78 + b"\r\n") * 3000)    # > 64 KiB: a temp file exists
    time.sleep(0.2)
    c.close()
    deadline = time.monotonic() + 5
    while os.listdir(store.blob_root / "tmp") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.listdir(store.blob_root / "tmp") == []
    assert blob_files(store) == before and find(store, ALICE, "cut-off") == []


# -- submission -------------------------------------------------------------------------------

def test_submission_starttls_auth_plain(daemon, store, tls):
    body = mail("sub-plain", sender=ALICE, to=BOB)
    with submission(daemon, tls) as s:
        assert "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]
        s.login(ALICE, PASSWORD)                              # smtplib picks PLAIN
        assert s.sendmail(ALICE, [BOB, "carol@remote.test"], body) == {}
    [delivered] = find(store, BOB, "sub-plain")
    [sent] = find(store, ALICE, "sub-plain", "Sent")
    assert strip_trace(delivered) == body and sent == delivered and b"with ESMTPSA id" in delivered
    [(rcpt, status, blob_key)] = store.query(
        "SELECT rcpt_to, status, blob_key FROM outbound_queue WHERE message_id = '<sub-plain@e2e.test>'")
    assert ("carol@remote.test" in rcpt, status) == (True, "queued")
    assert strip_trace(store.registry.blobs.sync.read(blob_key)) == body


def test_submission_auth_login(daemon, store, tls):
    with submission(daemon, tls) as s:
        s.user, s.password = ALICE, PASSWORD
        code, _ = s.auth("LOGIN", s.auth_login)
        assert code == 235
        s.sendmail(ALICE, [ALICE], mail("sub-login", sender=ALICE))
    assert len(find(store, ALICE, "sub-login")) == 1 and len(find(store, ALICE, "sub-login", "Sent")) == 1


def test_submission_refuses_strangers_and_spoofing(daemon, tls):
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=10) as s:
        s.ehlo()
        assert not s.has_extn("auth")                         # no AUTH before TLS
        token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
        assert s.docmd("AUTH", f"PLAIN {token}")[0] == 530
        assert s.docmd("MAIL", f"FROM:<{ALICE}>")[0] == 530   # a stranger even from 127.0.0.1
    with submission(daemon, tls) as s:
        assert s.docmd("MAIL", f"FROM:<{ALICE}>")[0] == 530  # TLS, but no AUTH yet
        with pytest.raises(smtplib.SMTPAuthenticationError) as bad:
            s.login(ALICE, "wrong-password")
        assert bad.value.smtp_code == 535
        s.login(ALICE, PASSWORD)
        with pytest.raises(smtplib.SMTPSenderRefused) as spoof:
            s.sendmail(BOB, [ALICE], mail("spoofed", sender=BOB))
        assert spoof.value.smtp_code == 553


def test_submission_refuses_a_forged_header_from_and_bare_cr(daemon, store, tls):
    """Issue 13, items 4 and 9: bob, authenticated, cannot send From: alice (553 5.7.1 after DATA,
    nothing stored or queued), and a bare CR (``\\r.\\r\\n``) is refused (554 5.6.0), never relayed."""
    with submission(daemon, tls) as s:
        s.login(BOB, PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as forged:
            s.sendmail(BOB, [ALICE, "carol@remote.test"], mail("forged-from", sender=ALICE))
        assert (forged.value.smtp_code, forged.value.smtp_error[:5]) == (553, b"5.7.1")
        with pytest.raises(smtplib.SMTPDataError) as via_sender:
            with_sender = mail("forged-sender", sender=BOB).replace(b"To:", f"Sender: {ALICE}\r\nTo:".encode())
            s.sendmail(BOB, [ALICE], with_sender)
        assert via_sender.value.smtp_code == 553
        s.mail(BOB)
        s.rcpt("carol@remote.test")
        assert s.docmd("DATA")[0] == 354
        s.send(mail("bare-cr", sender=BOB, body="one\r.\r\nMAIL FROM:<x@y.z>\r\n") + b".\r\n")
        code, text = s.getreply()
        assert (code, text[:5]) == (554, b"5.6.0")
        s.sendmail(BOB, [ALICE], mail("honest", sender=BOB))
    assert find(store, ALICE, "forged-from") == [] and find(store, ALICE, "forged-sender") == []
    assert find(store, BOB, "forged-from", "Sent") == [] and len(find(store, ALICE, "honest")) == 1
    assert store.query("SELECT id FROM outbound_queue WHERE message_id IN"
                       " ('<forged-from@e2e.test>', '<bare-cr@e2e.test>')") == []


def test_submissions_implicit_tls(daemon, store, tls):
    big = mail("implicit-tls", sender=ALICE, to=BOB, body=("t" * 98 + "\r\n") * 9000)   # ~900 KB through TLS
    with smtplib.SMTP_SSL("localhost", daemon.ports["submissions"], context=tls, timeout=10) as s:
        s.ehlo()
        assert not s.has_extn("starttls") and "PLAIN" in s.esmtp_features["auth"]
        s.login(ALICE, PASSWORD)
        s.sendmail(ALICE, [BOB], big)
    [raw] = find(store, BOB, "implicit-tls")
    assert strip_trace(raw) == big


# -- swaks ------------------------------------------------------------------------------------

SWAKS = shutil.which("swaks")
needs_swaks = pytest.mark.skipif(SWAKS is None, reason="swaks is not installed (apt-get install swaks)")


def swaks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SWAKS or "swaks", "--timeout", "10", *args], capture_output=True, text=True, timeout=60)


@needs_swaks
def test_swaks_mx_with_pipelining(daemon, store):
    result = swaks("--server", f"127.0.0.1:{daemon.ports['smtp']}", "--from", "sw@remote.test", "--to", ALICE,
                   "--header", "Subject: swaks-mx", "--pipeline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<** " not in result.stdout
    assert len(find(store, ALICE, "swaks-mx")) == 1


@needs_swaks
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_submission_starttls_auth(daemon, store, mechanism):
    subject = f"swaks-{mechanism}"
    result = swaks("--server", f"localhost:{daemon.ports['submission']}", "--tls",
                   "--tls-verify", "--tls-ca-path", str(daemon.data / "tls/cert.pem"),
                   "--auth", mechanism, "--auth-user", ALICE, "--auth-password", PASSWORD,
                   "--from", ALICE, "--to", BOB, "--header", f"Subject: {subject}", "--pipeline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(find(store, BOB, subject)) == 1 and len(find(store, ALICE, subject, "Sent")) == 1


@needs_swaks
def test_swaks_wrong_password(daemon):
    result = swaks("--server", f"localhost:{daemon.ports['submission']}", "--tls", "--auth", "PLAIN",
                   "--auth-user", ALICE, "--auth-password", "nope", "--from", ALICE, "--to", BOB)
    assert result.returncode != 0 and "535 5.7.8" in result.stdout


def test_metrics_count_smtp(daemon):
    status, _, body = daemon.http("GET", "/metrics")
    assert status == 200
    text = body.decode()
    assert 'tau_connections{protocol="smtp"}' in text
    assert 'tau_logins_total{outcome="ok",protocol="smtp"}' in text


def test_no_blob_leftovers(store):
    """After everything above (cut-offs, refusals), no temp upload is left behind."""
    assert os.listdir(Path(store.blob_root) / "tmp") == []
