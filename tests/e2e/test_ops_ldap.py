"""Acceptance: an LDAP user (real slapd on loopback) logs in over IMAP, SMTP and DAV on the real
daemon; they are provisioned on first login; a local user keeps working beside them."""

from __future__ import annotations

import base64
import http.client
import imaplib
import smtplib
import ssl
from collections.abc import Iterator

import pytest

from tests.support import slapd as slapd_mod
from tests.support.daemon import TauDaemon

pytestmark = pytest.mark.e2e

BOB, BOB_PW = "bob@example.test", "bob-ldap-Pa55"
ALICE, ALICE_PW = "alice@example.test", "secret-Pa55"
QUIET = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    reason = slapd_mod.available()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("ops-ldap")
    server = slapd_mod.Slapd(folder / "slapd", slapd_mod.person("bob", BOB, BOB_PW, "Bob Builder"), admins=[])
    try:
        server.start()
    except Exception as exc:
        pytest.skip(f"slapd cannot run here: {exc}")
    ldap_env = {f"TAU_LDAP_{k.upper()}": v for k, v in server.settings().items()}
    d = TauDaemon(folder / "tau", listeners=("submission", "imap", "http"), extra={**QUIET, **ldap_env})
    try:
        d.init()
        d.add_user(ALICE, ALICE_PW)
        d.start()
        yield d
    finally:
        d.stop()
        server.stop()


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_ldap_user_over_imap_smtp_and_dav(daemon: TauDaemon) -> None:
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    assert imap.login(BOB, BOB_PW)[0] == "OK"  # first login provisions the account
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()

    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=15) as smtp:
        smtp.starttls(context=_insecure())
        smtp.login(BOB, BOB_PW)
        smtp.sendmail(BOB, [ALICE], f"From: {BOB}\r\nTo: {ALICE}\r\nSubject: from ldap\r\n\r\nhi\r\n")

    conn = http.client.HTTPConnection("127.0.0.1", daemon.ports["http"], timeout=15)
    auth = base64.b64encode(f"{BOB}:{BOB_PW}".encode()).decode()
    conn.request("PUT", f"/dav/files/{BOB}/hello.txt", body=b"hello ldap", headers={"Authorization": f"Basic {auth}"})
    put = conn.getresponse()
    put.read()
    assert put.status in (201, 204)
    conn.request("PROPFIND", f"/dav/files/{BOB}/", headers={"Authorization": f"Basic {auth}", "Depth": "1"})
    r = conn.getresponse()
    assert r.status == 207 and b"hello.txt" in r.read()

    listed = daemon.cli("user", "list", "--json").stdout.decode()
    assert '"source": "ldap"' in listed and "Bob Builder" in listed

    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    imap.login(ALICE, ALICE_PW)  # the local account is untouched
    imap.select("INBOX")
    typ, data = imap.search(None, "SUBJECT", '"from ldap"')
    assert typ == "OK" and data[0].split()
    imap.logout()


def test_wrong_directory_password_is_refused_everywhere(daemon: TauDaemon) -> None:
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    with pytest.raises(imaplib.IMAP4.error):
        imap.login(BOB, "not-the-password")
    imap.logout()
    conn = http.client.HTTPConnection("127.0.0.1", daemon.ports["http"], timeout=15)
    auth = base64.b64encode(f"{BOB}:wrong".encode()).decode()
    conn.request("PROPFIND", f"/dav/files/{BOB}/", headers={"Authorization": f"Basic {auth}", "Depth": "0"})
    assert conn.getresponse().status == 401
