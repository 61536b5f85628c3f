"""Real IMAP clients against the real daemon (``twistd -n tau`` on free loopback ports): imaplib,
imapclient and mutt, on every database engine (``TAU_TEST_ENGINES``)."""

from __future__ import annotations

import imaplib
import os
import pty
import re
import select
import shutil
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e

ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "secret-Pa55"


def msg(subject: str, body: str = "Hello from the e2e test.\r\n", sender: str = BOB) -> bytes:
    return (f"From: Bob <{sender}>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <{subject.replace(' ', '.')}@e2e>\r\n"
            f"\r\n{body}").encode()


MULTIPART = (
    f"From: Bob <{BOB}>\r\nTo: {ALICE}\r\nSubject: with attachment\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
    "--b1\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n"
    "Content-Disposition: attachment; filename=a.pdf\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
).encode()


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    url = daemon_database_url(request)
    d = TauDaemon(tmp_path_factory.mktemp(f"imap-{request.param}"), database_url=url,
                  listeners=("smtp", "imap", "imaps", "http")).init()
    d.add_user(ALICE)
    d.add_user(BOB)
    d.start("imap")
    yield d
    d.stop()


@pytest.fixture
def tls_context(daemon: TauDaemon) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(daemon.data / "tls" / "cert.pem"))


def connect(daemon: TauDaemon, user: str = ALICE) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"], timeout=10)
    m.login(user, PASSWORD)
    return m


def fresh_mailbox(m: imaplib.IMAP4, name: str) -> None:
    m.create(name)
    typ, _ = m.select(name)
    assert typ == "OK"


def test_imaplib_full_flow(daemon: TauDaemon) -> None:
    m = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"], timeout=10)
    assert {"IMAP4REV1", "STARTTLS", "AUTH=PLAIN", "IDLE", "LITERAL+"} <= set(m.capabilities)
    typ, data = m.login(ALICE, PASSWORD)  # loopback: allowed without TLS
    assert typ == "OK"
    typ, caps = m.capability()
    assert {b"UIDPLUS", b"MOVE", b"CONDSTORE", b"SPECIAL-USE", b"NAMESPACE", b"ENABLE"} <= set(caps[0].split())
    typ, boxes = m.list()
    names = {b.decode().rsplit(" ", 1)[1].strip('"') for b in boxes}
    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= names
    assert any(b"\\Sent" in b for b in boxes)

    fresh_mailbox(m, "Flow")
    for i in range(3):
        typ, data = m.append("Flow", "(\\Flagged)" if i == 0 else None, None, msg(f"flow {i}"))
        assert typ == "OK" and data[0].startswith(b"[APPENDUID ")
    typ, data = m.append("Flow", None, None, MULTIPART)
    m.noop()
    typ, data = m.select("Flow")
    assert data == [b"4"]
    typ, data = m.fetch("1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)")
    assert typ == "OK" and len(data) == 4 and b"flow 0" in data[0] and b"\\Flagged" in data[0]
    typ, data = m.fetch("4", "(BODYSTRUCTURE BODY.PEEK[2])")
    assert b'"APPLICATION" "PDF"' in data[0][0] and data[0][1] == b"JVBERi0xLjQK"
    typ, data = m.fetch("2", "(RFC822)")
    assert data[0][1] == msg("flow 1")
    typ, data = m.search(None, "SUBJECT", '"flow 1"')
    assert data == [b"2"]
    typ, data = m.uid("SEARCH", "FLAGGED")
    assert data == [b"1"]
    typ, data = m.store("3", "+FLAGS", "(\\Deleted)")
    assert b"\\Deleted" in data[0]
    typ, data = m.copy("1:2", "Archive")
    assert typ == "OK"
    typ, data = m.expunge()
    assert data == [b"3"]
    typ, data = m.uid("MOVE", "4", "Trash")
    assert typ == "OK" and m.response("EXPUNGE")[1] == [b"3"]
    typ, data = m.fetch("1:*", "(UID)")
    assert [re.search(rb"UID (\d+)", x).group(1) for x in data] == [b"1", b"2"]
    typ, data = m.status("Archive", "(MESSAGES UIDNEXT)")
    assert b"MESSAGES 2" in data[0]
    m.close()
    m.logout()


def test_imaplib_starttls_and_imaps(daemon: TauDaemon, tls_context: ssl.SSLContext) -> None:
    m = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"], timeout=10)
    typ, _ = m.starttls(ssl_context=tls_context)
    assert typ == "OK"
    assert "STARTTLS" not in m.capabilities
    m.login(ALICE, PASSWORD)
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    s = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=tls_context, timeout=10)
    assert "AUTH=PLAIN" in s.capabilities
    s.login(ALICE, PASSWORD)
    assert s.select("INBOX")[0] == "OK"
    s.logout()


def test_imaplib_idle_sees_append_from_another_connection(daemon: TauDaemon) -> None:
    idler = connect(daemon)
    fresh_mailbox(idler, "Idle")
    tag = idler._new_tag()
    idler.send(tag + b" IDLE\r\n")
    assert idler.readline().startswith(b"+")
    other = connect(daemon)
    latencies = []
    for i in range(3):
        started = time.monotonic()
        assert other.append("Idle", None, None, msg(f"idle {i}"))[0] == "OK"
        idler.sock.settimeout(1.0)
        line = idler.readline()
        latencies.append(time.monotonic() - started)
        assert line == f"* {i + 1} EXISTS\r\n".encode()
        assert idler.readline() == f"* {i + 1} RECENT\r\n".encode()  # the only session: all are its recent
    assert max(latencies) < 1.0
    idler.send(b"DONE\r\n")
    assert idler.readline().startswith(tag + b" OK")
    other.logout()
    idler.logout()


def test_idle_sees_smtp_delivery(daemon: TauDaemon) -> None:
    """A message accepted by the MX listener reaches an idling client through the bus."""
    idler = connect(daemon, BOB)
    typ, data = idler.select("INBOX")
    before = int(data[0])
    tag = idler._new_tag()
    idler.send(tag + b" IDLE\r\n")
    assert idler.readline().startswith(b"+")
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as smtp:
        assert smtp.sendmail("carol@remote.test", [BOB], msg("over smtp", sender="carol@remote.test")) == {}
    idler.sock.settimeout(1.0)
    assert idler.readline() == f"* {before + 1} EXISTS\r\n".encode()
    assert time.monotonic() - started < 1.0
    assert re.fullmatch(rb"\* \d+ RECENT\r\n", idler.readline())
    idler.send(b"DONE\r\n")
    assert idler.readline().startswith(tag + b" OK")
    typ, data = idler.fetch(str(before + 1), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: over smtp\r\n\r\n"
    idler.logout()


def test_two_sessions_agree_on_uids_and_expunges(daemon: TauDaemon) -> None:
    a, b = connect(daemon), connect(daemon)
    fresh_mailbox(a, "Shared")
    for i in range(4):
        a.append("Shared", None, None, msg(f"shared {i}"))
    b.select("Shared")
    a.select("Shared")
    a.store("2", "+FLAGS", "(\\Deleted)")
    a.expunge()
    typ, data = b.fetch("2", "(UID)")  # b has not been told: message 2 is still number 2 for it
    assert b.response("EXPUNGE") == ("EXPUNGE", [None])
    typ, data = b.noop()
    assert b.response("EXPUNGE")[1] == [b"2"]
    uids_a = a.fetch("1:*", "(UID)")[1]
    uids_b = b.fetch("1:*", "(UID)")[1]
    assert uids_a == uids_b and len(uids_a) == 3
    a.logout()
    b.logout()


def test_another_user_cannot_reach_mailbox(daemon: TauDaemon) -> None:
    bob = connect(daemon, BOB)
    bob.create("BobOnly")
    bob.append("BobOnly", None, None, msg("bob private"))
    alice = connect(daemon)
    for name in ("BobOnly", f"{BOB}/BobOnly", f"~{BOB}/BobOnly", f"../{BOB}/BobOnly"):
        assert alice.select(f'"{name}"')[0] == "NO"
    bob.logout()
    alice.logout()


def test_imapclient_envelopes_bodystructure_idle(daemon: TauDaemon, tls_context: ssl.SSLContext) -> None:
    imapclient = pytest.importorskip("imapclient")
    c = imapclient.IMAPClient("127.0.0.1", port=daemon.ports["imap"], ssl=False, timeout=10)
    c.starttls(tls_context)
    c.login(ALICE, PASSWORD)
    c.create_folder("Client")
    c.append("Client", msg("imapclient one"))
    c.append("Client", MULTIPART, flags=[imapclient.SEEN])
    c.select_folder("Client")
    uids = c.search(["ALL"])
    data = c.fetch(uids, ["ENVELOPE", "BODYSTRUCTURE", "FLAGS", "RFC822.SIZE"])
    env = data[uids[0]][b"ENVELOPE"]
    assert env.subject == b"imapclient one" and env.from_[0].mailbox == b"bob"
    bs = data[uids[1]][b"BODYSTRUCTURE"]
    assert bs.is_multipart and bs[0][1][0] == b"APPLICATION"
    assert imapclient.SEEN in data[uids[1]][b"FLAGS"]
    assert c.folder_status("Client", ["MESSAGES"])[b"MESSAGES"] == 2
    special = c.find_special_folder(imapclient.imapclient.SENT)
    assert special == "Sent"
    c.idle()
    other = connect(daemon)
    other.append("Client", None, None, msg("imapclient pushed"))
    responses = c.idle_check(timeout=1)
    c.idle_done()
    assert (3, b"EXISTS") in responses
    other.logout()
    c.move([uids[0]], "Trash")
    assert c.search(["ALL"]) == [uids[1], uids[1] + 1]
    c.logout()


def test_metrics_count_imap_connections(daemon: TauDaemon) -> None:
    m = connect(daemon)
    status, _, body = daemon.http("GET", "/metrics")
    assert status == 200
    assert re.search(rb'tau_connections\{protocol="imap"\} [1-9]', body)
    assert re.search(rb'tau_logins_total\{outcome="ok",protocol="imap"\} [1-9]', body)
    m.logout()


def test_mutt_reads_a_message(daemon: TauDaemon, tmp_path: Path) -> None:
    if shutil.which("mutt") is None:
        pytest.skip("mutt is not installed (apt-get install -y mutt; CI installs it)")
    m = connect(daemon)
    m.append("INBOX", None, None, msg("for mutt", body="The mutt body line.\r\n"))
    m.logout()
    out = tmp_path / "piped.txt"
    rc = tmp_path / "muttrc"
    rc.write_text(
        f'set folder="imap://alice%40example.test@127.0.0.1:{daemon.ports["imap"]}/"\n'
        f'set imap_pass="{PASSWORD}"\nset spoolfile="+INBOX"\n'
        "set ssl_starttls=yes\nset ssl_force_tls=yes\n"
        f'set ssl_ca_certificates_file="{daemon.data / "tls" / "cert.pem"}"\n'
        f'set certificate_file="{tmp_path / "certs"}"\nset header_cache=""\nset message_cachedir=""\n'
        f'set move=no\nset quit=yes\nset wait_key=no\nset record=""\nset mbox="{tmp_path / "mbox"}"\n'
        "set imap_check_subscribed=no\nset timeout=5\nset sort=date\n")
    env = dict(os.environ, HOME=str(tmp_path), TERM="vt100", MAILCAPS="/dev/null")
    # mutt is a curses program: run it on a pseudo-terminal, drive it with pushed keys
    search = "~s 'for mutt'"
    keys = f'push "<limit>{search}<enter><pipe-message>cat > {out}<enter><quit>"'
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        os.execvpe("mutt", ["mutt", "-n", "-F", str(rc), "-e", keys], env)
    screen = b""
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                screen += os.read(fd, 65536)
            except OSError:
                pass
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status = code
            break
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    os.close(fd)
    assert status == 0, screen[-2000:]
    assert b"Authenticating" in screen and b"TLS" in screen
    text = out.read_text()
    assert "Subject: for mutt" in text and "The mutt body line." in text


def test_raw_socket_garbage_keeps_connection(daemon: TauDaemon) -> None:
    with socket.create_connection(("127.0.0.1", daemon.ports["imap"]), timeout=5) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"* OK")
        s.sendall(b"a1 FROB\r\na2 FETCH 1 (FLAGS\r\n" + b"x" * 100_000 + b"\r\na3 NOOP\r\n")
        lines = [f.readline() for _ in range(4)]
        assert lines[0].startswith(b"a1 BAD") and lines[1].startswith(b"a2 BAD")
        assert lines[2].startswith(b"* BAD") or lines[2].startswith(b"x")
        assert lines[3] == b"a3 OK NOOP completed\r\n"


def test_starttls_discards_pipelined_plaintext(daemon: TauDaemon, tls_context: ssl.SSLContext) -> None:
    """RFC 3501 §6.2.1 / CVE-2011-0411 style injection: input sent after STARTTLS in the same
    packet must not be executed inside the TLS session."""
    with socket.create_connection(("127.0.0.1", daemon.ports["imap"]), timeout=5) as raw:
        f = raw.makefile("rb")
        assert f.readline().startswith(b"* OK")
        raw.sendall(b"a STARTTLS\r\nb LOGIN alice@example.test secret-Pa55\r\n")
        assert f.readline() == b"a OK Begin TLS negotiation now\r\n"
        with tls_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"c CAPABILITY\r\n")
            tf = tls.makefile("rb")
            assert tf.readline().startswith(b"* CAPABILITY ")
            assert tf.readline() == b"c OK Capability completed\r\n"  # no "b" response came first
            tls.sendall(b"d SELECT INBOX\r\n")
            assert tf.readline() == b"d BAD Not authenticated\r\n"
