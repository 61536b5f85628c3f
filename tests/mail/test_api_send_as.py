"""``POST /api/emails`` with ``"from"`` (issue 13, item 4): the same rule as SMTP submission — the
user's own address, an alias of theirs or a ``tau user send-as`` grant; anything else is 403
``sender_not_allowed`` and nothing is stored or queued. In process, both engines."""

from __future__ import annotations

import pytest

from tau.auth import accounts, sendas
from tests.support.http import assert_json_error
from tests.support.mail_api import ALICE, BOB, mail_world
from tests.support.smtp import mailbox_messages

SHARED = "shared@example.test"


@pytest.fixture
def mail(tmp_path, db_url):
    yield from mail_world(tmp_path, db_url)


def post(mail, sender, user=BOB, to=(ALICE, "carol@remote.test")):
    return mail.api("POST", "/api/emails", {"from": sender, "to": list(to), "subject": "hi", "text": "x"}, user=user)


def test_bob_cannot_send_from_alice_or_an_ungranted_address(mail):
    for sender in (ALICE, f"Alice <{ALICE}>", SHARED):
        assert_json_error(post(mail, sender), 403, "sender_not_allowed")
    assert_json_error(post(mail, 42), 400, "invalid_request")
    assert_json_error(post(mail, "not an address"), 400, "invalid_address")
    assert mail.items(ALICE) == [] and mailbox_messages(mail.store, BOB, "Sent") == [] and mail.queue() == []


def test_own_address_alias_and_send_as_grant(mail):
    assert post(mail, BOB.upper()).status == 202
    mail.registry.db.sync.run("alias", accounts.add_alias, "bob.b@example.test", BOB)
    assert post(mail, "bob.b@example.test").status == 202
    mail.registry.db.sync.run("grant", sendas.grant, BOB, SHARED)
    assert post(mail, SHARED).status == 202
    assert [i["from"] for i in mail.items(ALICE)] == [[SHARED], ["bob.b@example.test"], [BOB]]
    assert [row[1] for row in mail.queue()] == [BOB, "bob.b@example.test", SHARED]
    assert len(mail.items(BOB, "mailbox=Sent")) == 3
    mail.registry.db.sync.run("revoke", sendas.revoke, BOB, SHARED)
    assert_json_error(post(mail, SHARED), 403, "sender_not_allowed")


def test_bare_cr_in_api_text_is_never_queued(mail):
    """Item 9 on the API path: the message is built with CRLF line ends, so a bare CR in the text
    (``\\r.\\r\\n``, a smuggling terminator downstream) cannot reach the outbound queue."""
    r = mail.api("POST", "/api/emails", {"to": ["carol@remote.test"], "subject": "cr",
                                          "text": "one\r.\r\nMAIL FROM:<x@y.z>\rtwo\n.\nthree",
                                          "html": "<p>a\r.\rb</p>"}, user=BOB)
    assert r.status == 202, r.body
    [blob_key] = [row[0] for row in mail.registry.db.sync.run(
        "q", lambda t: t.query("SELECT blob_key FROM outbound_queue"))]
    raw = mail.registry.blobs.sync.read(blob_key)
    assert raw.count(b"\r") == raw.count(b"\r\n") == raw.count(b"\n")
