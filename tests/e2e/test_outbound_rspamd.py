"""Spam filtering with a real Rspamd from Debian, started by the test on loopback ports: a score
header on accepted mail, GTUBE refused with 550 5.7.1, nothing filtered when [spam] is not set."""

from __future__ import annotations

import smtplib
import time

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.outbound import RemotePeer, start_rspamd
from tests.support.smtp import DaemonStore

pytestmark = pytest.mark.e2e
ALICE = "alice@example.test"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    proc, url, why = start_rspamd(tmp_path_factory.mktemp("rspamd"))
    if proc is None:
        pytest.skip(f"cannot start rspamd here: {why}")
    yield url
    proc.terminate()
    proc.wait(10)


def send(daemon, subject: str, body: str) -> tuple[int, str]:
    raw = (f"From: news@spf-pass.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x.test>\r\n"
           f"Date: Mon, 24 Nov 2025 10:00:00 +0000\r\n\r\n{body}\r\n").encode()
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=60) as s:
        try:
            s.sendmail("news@spf-pass.test", [ALICE], raw)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error.decode()
    return 250, ""


@pytest.mark.parametrize("engine", engines())
def test_rspamd_scores_and_rejects(engine, request, tmp_path, rspamd):
    url = daemon_database_url(request, engine)
    peer = RemotePeer(tmp_path, {"spf-pass.test": [["TXT", "v=spf1 ip4:127.0.0.0/8 -all"]]}).start()
    daemon = TauDaemon(tmp_path, database_url=url, listeners=("smtp", "http"), extra={
        "TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{peer.dns_port}", "TAU_SPAM_RSPAMD_URL": rspamd,
        "TAU_SPAM_REJECT_SCORE": "15", "TAU_SPAM_JUNK_SCORE": "6"})
    daemon.init()
    daemon.add_user(ALICE)
    daemon.start("smtp")
    store = DaemonStore(daemon)
    try:
        code, text = send(daemon, "gtube", GTUBE)
        assert code == 550 and text.startswith("5.7.1") and "spam" in text, (code, text)
        assert send(daemon, "ham", "Hello, this is an ordinary note about lunch.")[0] == 250
        deadline = time.monotonic() + 10
        found: list[bytes] = []
        while not found and time.monotonic() < deadline:
            found = [m for m in store.messages(ALICE) if b"Subject: ham" in m]
            time.sleep(0.1)
        [ham] = found
        head = ham.split(b"\r\n\r\n")[0]
        assert b"\r\nX-Spam-Score: " in head and b"X-Spam-Status: No, score=" in head
        assert not [m for m in store.messages(ALICE) if b"gtube" in m]
    finally:
        store.close()
        daemon.stop()
        peer.stop()
