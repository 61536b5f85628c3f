"""imaplib against the real daemon: UTF8=ACCEPT (RFC 6855) mailbox names, IMAP4rev2 (RFC 9051)
ESEARCH and LIST-EXTENDED subscriptions, over a TCP socket on every database engine."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e

ALICE = "alice@example.test"
PASSWORD = "secret-Pa55"
MESSAGE = b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    url = daemon_database_url(request)
    d = TauDaemon(tmp_path_factory.mktemp(f"rev2-{request.param}"), database_url=url,
                  listeners=("imap", "http")).init()
    d.add_user(ALICE)
    d.start("imap")
    yield d
    d.stop()


def connect(daemon: TauDaemon) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"], timeout=10)
    m.login(ALICE, PASSWORD)
    return m


def test_imaplib_utf8_accept_names(daemon: TauDaemon) -> None:
    m = connect(daemon)
    assert {b"IMAP4rev2", b"UTF8=ACCEPT"} <= set(m.capability()[1][0].split())
    assert m.enable("UTF8=ACCEPT")[0] == "OK"  # imaplib now sends and reads UTF-8 names
    assert m.create('"Entw\u00fcrfe"')[0] == "OK"
    typ, boxes = m.list('""', '"Entw*"')
    assert boxes == ['(\\HasNoChildren) "/" "Entw\u00fcrfe"'.encode()]
    assert m.select('"Entw\u00fcrfe"')[0] == "OK"
    plain = connect(daemon)
    assert plain.list('""', '"Entw*"')[1] == [b'(\\HasNoChildren) "/" "Entw&APw-rfe"']
    m.logout()
    plain.logout()


def test_imaplib_rev2_esearch_and_subscriptions(daemon: TauDaemon) -> None:
    m = connect(daemon)
    m.create("Rev2")
    for _ in range(2):
        assert m.append("Rev2", None, None, MESSAGE)[0] == "OK"
    assert m.create("Rev2/Sub")[0] == "OK"
    assert m.subscribe("Rev2/Sub")[0] == "OK"
    typ, data = m._simple_command("ENABLE", "IMAP4rev2")
    assert typ == "OK" and m.untagged_responses.pop("ENABLED") == [b"IMAP4rev2"]
    m.select("Rev2")
    assert m.untagged_responses.pop("LIST") == [b'(\\HasChildren) "/" "Rev2"']  # RFC 9051 §6.3.2
    typ, _ = m.uid("SEARCH", "ALL")
    assert typ == "OK"
    esearch = m.untagged_responses.pop("ESEARCH")[0]
    assert esearch.endswith(b" UID ALL 1:2")
    typ, data = m._simple_command("LIST", '(SUBSCRIBED RECURSIVEMATCH) "" "Rev%"')
    assert typ == "OK"
    assert m.untagged_responses.pop("LIST") == [b'(\\HasChildren) "/" "Rev2" ("CHILDINFO" ("SUBSCRIBED"))']
    m.logout()
