"""Outbound delivery and inbound trust against the real daemon, with a remote world on loopback:
an authoritative twisted.names server with the test zones, an SMTP sink as the remote MX (with a
certificate from a test CA, so STARTTLS and MTA-STS enforce are real), and an MTA-STS HTTPS server.

Acceptance (issue 4): alice's mail to bob@remote.test arrives DKIM-signed (RSA and Ed25519) and
verifies with dkimpy against the key published in the test DNS; a 4xx peer is retried; a 5xx peer
and a null-MX domain give alice a DSN in her INBOX; inbound with failing SPF or DMARC p=reject is
refused, quarantine goes to Junk, accepted mail carries Authentication-Results.
"""

from __future__ import annotations

import email
import smtplib
import ssl
import time

import dkim
import pytest

from tau.mail.store import queue
from tests.support.blobfiles import stored_blobs
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.outbound import RemotePeer, make_tls
from tests.support.smtp import DaemonStore

pytestmark = pytest.mark.e2e
ALICE, CAROL, PASSWORD = "alice@example.test", "carol@example.test", "secret-Pa55"
POLICY = "version: STSv1\nmode: enforce\nmx: mx.remote.test\nmax_age: 86400\n"


def txt_of(keygen_output: str) -> tuple[str, str]:
    name, _, _, rest = keygen_output.splitlines()[0].split(" ", 3)
    return name.rstrip("."), "".join(p.strip('"') for p in rest.split('" "'))


@pytest.fixture(scope="module", params=engines())
def world(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"outbound-{request.param}")
    url = daemon_database_url(request)
    daemon = TauDaemon(folder, database_url=url, listeners=("smtp", "submission", "http"))
    daemon.init()
    for user in (ALICE, CAROL):
        daemon.add_user(user)
    rsa = txt_of(daemon.cli("dkim", "keygen", "example.test").stdout.decode())
    ed = txt_of(daemon.cli("dkim", "keygen", "example.test", "--algorithm", "ed25519").stdout.decode())
    ca, cert, key = make_tls(folder, ["mx.remote.test", "mx2.remote.test", "mta-sts.sts.test",
                                      "mta-sts.sts-bad.test"])
    zone = {
        "remote.test": [["MX", 10, "mx.remote.test"]],
        "mx.remote.test": [["A", "127.0.0.1"]], "mx2.remote.test": [["A", "127.0.0.1"]],
        "nullmx.test": [["MX", 0, ""]],
        "sts.test": [["MX", 10, "mx.remote.test"]], "_mta-sts.sts.test": [["TXT", "v=STSv1; id=20250101"]],
        "sts-bad.test": [["MX", 10, "mx2.remote.test"]], "_mta-sts.sts-bad.test": [["TXT", "v=STSv1; id=1"]],
        rsa[0]: [["TXT", rsa[1]]], ed[0]: [["TXT", ed[1]]],
        "spf-fail.test": [["TXT", "v=spf1 ip4:192.0.2.1 -all"]],
        "spf-pass.test": [["TXT", "v=spf1 ip4:127.0.0.0/8 -all"]],
        "_dmarc.spf-pass.test": [["TXT", "v=DMARC1; p=reject"]],
        "_dmarc.dmarc-reject.test": [["TXT", "v=DMARC1; p=reject"]],
        "_dmarc.dmarc-quarantine.test": [["TXT", "v=DMARC1; p=quarantine"]],
    }
    peer = RemotePeer(folder, zone, tls_cert=str(cert), tls_key=str(key), mta_sts_policy=POLICY).start()
    daemon.env.update({
        "TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{peer.dns_port}", "TAU_OUTBOUND_PORT": str(peer.smtp_port),
        "TAU_OUTBOUND_POLL_INTERVAL": "1", "TAU_OUTBOUND_RETRY_BASE": "1", "TAU_OUTBOUND_TLS_CA_FILE": str(ca),
        "TAU_OUTBOUND_MTA_STS_HOST": f"127.0.0.1:{peer.https_port}"})
    daemon.start("smtp")
    store = DaemonStore(daemon)
    yield daemon, peer, store
    store.close()
    daemon.stop()
    peer.stop()


def submit(daemon, sender: str, rcpts: list[str], subject: str, extra: str = "") -> bytes:
    body = (f"From: {sender}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.test>\r\nDate: Mon, 24 Nov 2025 10:00:00 +0000\r\n{extra}\r\n"
            f"Hello from {sender}.\r\n.leading dot line\r\n").encode()
    ctx = ssl.create_default_context(cafile=str(daemon.data / "tls/cert.pem"))
    with smtplib.SMTP("localhost", daemon.ports["submission"], timeout=10) as s:
        s.starttls(context=ctx)
        s.login(sender, PASSWORD)
        s.sendmail(sender, rcpts, body)
    return body


def arrived(peer: RemotePeer, subject: str, count: int = 1, timeout: float = 20) -> list[tuple[dict, bytes]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [(e, m) for e, m in peer.messages() if f"\r\nSubject: {subject}\r\n".encode() in m]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def inbox_with(store: DaemonStore, user: str, needle: bytes, mailbox: str = "INBOX",
               timeout: float = 20) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in store.messages(user, mailbox) if needle in m]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_an_inbound_message_is_stored_once_with_its_checks(world):
    """Issue 15: the checked message is written once, with its Authentication-Results, not a
    received copy and then a rewritten one; a refused message writes nothing. (First in the
    module: nothing else is writing yet.)"""
    daemon, peer, store = world
    before = set(stored_blobs(store.blob_root))
    assert mx_send(daemon, "x@spf-fail.test", "x@spf-fail.test", "once-refused")[0] == 550
    assert set(stored_blobs(store.blob_root)) == before
    assert mx_send(daemon, "news@spf-pass.test", "news@spf-pass.test", "once-in")[0] == 250
    [raw] = inbox_with(store, ALICE, b"Subject: once-in")
    new = set(stored_blobs(store.blob_root)) - before
    assert len(new) == 1 and b"Authentication-Results: localhost;" in raw


def test_signed_delivery_verifies_with_dkimpy(world):
    daemon, peer, store = world
    sent = submit(daemon, ALICE, ["bob@remote.test"], "dkim-e2e")
    [(env, raw)] = arrived(peer, "dkim-e2e")
    assert env["rcpts"] == ["bob@remote.test"] and env["mail_from"] == ALICE
    assert env["tls"] is True                                    # opportunistic STARTTLS was used
    assert raw.endswith(b"\r\n.leading dot line\r\n")             # dot-stuffing undone by the peer

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return peer.dns_resolve_txt(name.decode().rstrip("."))[0]

    checker = dkim.DKIM(raw)
    sigs = [h for h in raw.split(b"\r\n\r\n")[0].split(b"\r\n") if h.lower().startswith(b"dkim-signature")]
    assert len(sigs) == 2
    assert checker.verify(idx=0, dnsfunc=dnsfunc) and checker.verify(idx=1, dnsfunc=dnsfunc)
    algos = {dict(t.strip().split("=", 1) for t in h.decode().split(":", 1)[1].split(";") if "=" in t)["a"]
             for h in sigs}
    assert algos == {"ed25519-sha256", "rsa-sha256"}
    assert sent.split(b"\r\n\r\n")[1] in raw
    assert inbox_with(store, ALICE, b"Subject: dkim-e2e", "Sent")   # the copy in Sent


def test_4xx_peer_is_retried(world):
    daemon, peer, store = world
    submit(daemon, ALICE, ["tempfail@remote.test"], "tempfail-e2e")
    [(env, _)] = arrived(peer, "tempfail-e2e", timeout=40)
    assert env["rcpts"] == ["tempfail@remote.test"]
    deadline = time.monotonic() + 10                  # the peer's 250 comes just before our commit
    while True:
        rows = store.query("SELECT attempts, status FROM outbound_queue WHERE message_id = ?",
                           ("<tempfail-e2e@example.test>",))
        if (rows and rows[0][1] == "sent") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows and rows[0][0] >= 3 and rows[0][1] == "sent", rows


def test_5xx_peer_and_null_mx_give_a_dsn(world):
    daemon, peer, store = world
    submit(daemon, ALICE, ["reject-me@remote.test", "someone@nullmx.test", "bob@remote.test"], "bounce-e2e")
    dsns = inbox_with(store, ALICE, b"<bounce-e2e@example.test>")
    assert len(dsns) == 1, dsns
    report = email.message_from_bytes(dsns[0])
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = [p.get_content_type() for p in report.get_payload()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    status = dsns[0].split(b"Content-Type: message/delivery-status")[1].decode()
    assert "Final-Recipient: rfc822; reject-me@remote.test" in status and "Status: 5.1.1" in status
    assert "Final-Recipient: rfc822; someone@nullmx.test" in status and "Status: 5.1.10" in status
    assert "bob@remote.test" not in status.split("--")[0]
    assert arrived(peer, "bounce-e2e")                            # bob still got his copy
    assert inbox_with(store, CAROL, b"bounce-e2e", timeout=0.5) == []   # nobody else sees the DSN


def test_mta_sts_enforce_requires_a_matching_verified_mx(world):
    daemon, peer, store = world
    submit(daemon, ALICE, ["bob@sts.test"], "sts-ok")
    [(env, _)] = arrived(peer, "sts-ok")
    assert env["tls"] is True
    submit(daemon, ALICE, ["bob@sts-bad.test"], "sts-bad")
    deadline = time.monotonic() + 15
    rows: list = []
    while time.monotonic() < deadline:
        rows = [(r.status, r.last_error) for r in store.registry.db.sync.run("q", queue.list_queue, None, 1000)
                if r.message_id == "<sts-bad@example.test>"]   # last_error is sealed at rest: read through the store
        if rows and rows[0][1]:
            break
        time.sleep(0.2)
    assert rows and rows[0][0] in ("queued", "sending") and "MTA-STS" in rows[0][1], rows
    assert arrived(peer, "sts-bad", timeout=0.5) == []


def mx_send(daemon, mail_from: str, header_from: str, subject: str) -> tuple[int, str]:
    body = (f"From: {header_from}\r\nTo: {ALICE}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x.test>\r\n"
            f"Date: Mon, 24 Nov 2025 10:00:00 +0000\r\n\r\nhi\r\n").encode()
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=30) as s:
        try:
            s.sendmail(mail_from, [ALICE], body)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error.decode()
    return 250, ""


def test_inbound_spf_and_dmarc(world):
    daemon, peer, store = world
    code, text = mx_send(daemon, "x@spf-fail.test", "x@spf-fail.test", "spf-fail-in")
    assert code == 550 and text.startswith("5.7.23"), (code, text)
    code, text = mx_send(daemon, "bounce@spf-pass.test", "ceo@dmarc-reject.test", "dmarc-reject-in")
    assert code == 550 and text.startswith("5.7.1") and "DMARC" in text, (code, text)
    assert mx_send(daemon, "bounce@spf-pass.test", "ceo@dmarc-quarantine.test", "dmarc-q-in")[0] == 250
    assert mx_send(daemon, "news@spf-pass.test", "news@spf-pass.test", "spf-pass-in")[0] == 250
    [ok] = inbox_with(store, ALICE, b"Subject: spf-pass-in")
    header = ok.split(b"\r\n\r\n")[0].decode()
    assert header.startswith("Return-Path: <news@spf-pass.test>\r\nReceived: from ")
    assert "Authentication-Results: localhost;" in header
    assert "spf=pass smtp.mailfrom=news@spf-pass.test" in header
    assert "dmarc=pass (p=reject dis=none) header.from=spf-pass.test" in header and "dkim=none" in header
    [junk] = inbox_with(store, ALICE, b"Subject: dmarc-q-in", "Junk")
    assert b"dmarc=fail (p=quarantine dis=quarantine)" in junk
    for subject in (b"spf-fail-in", b"dmarc-reject-in", b"dmarc-q-in"):
        assert inbox_with(store, ALICE, b"Subject: " + subject, timeout=0) == []


def test_forged_authentication_results_are_dropped(world):
    daemon, peer, store = world
    body = (f"Authentication-Results: localhost; dkim=pass header.d=bank.test\r\nFrom: news@spf-pass.test\r\n"
            f"To: {ALICE}\r\nSubject: forged-ar\r\n\r\nhi\r\n").encode()
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=30) as s:
        s.sendmail("news@spf-pass.test", [ALICE], body)
    [raw] = inbox_with(store, ALICE, b"Subject: forged-ar")
    assert raw.count(b"Authentication-Results:") == 1 and b"header.d=bank.test" not in raw
