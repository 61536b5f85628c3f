"""Submission cannot forge From or Sender, and bare CRs are not relayed (issue 13, items 4 and 9).

Every attack goes through SMTP bytes on the submission listener (in process, both engines); a
refusal must come after the end of data and before the 250, leaving nothing stored or queued.
"""

from __future__ import annotations

import base64

import pytest

from tau.auth import accounts, sendas
from tests.support.blobfiles import stored_blobs
from tests.support.harness import add_user
from tests.support.smtp import Client, mail_store, mailbox_messages, make_factory, strip_trace

ALICE, BOB, CAROL, PASSWORD = "alice@example.test", "bob@example.test", "carol@example.test", "secret-Pa55"
REMOTE = "dave@remote.test"


@pytest.fixture
def store(registry):
    for user in (ALICE, BOB, CAROL):
        add_user(registry, user, PASSWORD)
    return mail_store(registry)


@pytest.fixture
def bob(registry, store) -> Client:
    c = Client(make_factory(registry, store, "submission"))
    c.submit_ready(BOB, PASSWORD)
    return c


def body(header: str, text: str = "Hi.\r\n") -> bytes:
    return (f"{header}\r\nTo: {CAROL}\r\nSubject: test\r\nMessage-ID: <t@example.test>\r\n\r\n{text}").encode()


def queue_rows(registry) -> list[tuple]:
    return registry.db.sync.run("q", lambda txn: txn.query("SELECT id FROM outbound_queue"))


def blob_files(registry) -> list[str]:
    return stored_blobs(registry.blob_backend.root)


def nothing_stored(registry, store) -> bool:
    return (all(mailbox_messages(store, u) == [] for u in (ALICE, CAROL))
            and mailbox_messages(store, BOB, "Sent") == [] and queue_rows(registry) == []
            and blob_files(registry) == [])


FORGED = [
    f"From: {ALICE}",
    f"From: Alice <{ALICE}>",
    f"From: {BOB}\r\nSender: {ALICE}",
    f"From: {BOB}, {ALICE}",
    f"From: {BOB}\r\nFrom: {ALICE}",
    f"From : {ALICE}",                                   # obsolete syntax, RFC 5322 §4.5.8
    f"FROM:\r\n {ALICE}",                                # folded
    f"From: Team: {BOB}, {ALICE};",                      # a group
    f"From: {ALICE}<{BOB}>",                             # read two ways by two parsers
    f"From: {BOB}\" <{ALICE}>",
    f"From: =?utf-8?b?{base64.b64encode(ALICE.encode()).decode()}?=",
    f"From: {BOB}\r\nX-Junk line without colon\r\nFrom: {ALICE}",
    f"From: {BOB}\r\nResent-From: {ALICE}",                 # re-review: resent fields were not bound
    f"From: {BOB}\r\nResent-From: {BOB}\r\nResent-Sender: {ALICE}",
    f"From: {BOB}\r\nRESENT-SENDER : {ALICE}",
    f"From: {BOB}\r\nResent-From: {BOB}, {ALICE}",
]


@pytest.mark.parametrize("header", FORGED)
def test_bob_cannot_put_alice_in_from_or_sender(bob, registry, store, header):
    replies = bob.mail(BOB, [CAROL, REMOTE], body(header))
    assert [r.code for r in replies] == [250, 250, 250, 354, 553], replies
    assert replies[-1].text.startswith("5.7.1 ")
    assert nothing_stored(registry, store)
    # the session goes on: bob's own From is accepted
    assert bob.mail(BOB, [CAROL], body(f"From: Bob <{BOB}>"))[-1].code == 250
    assert len(mailbox_messages(store, CAROL)) == 1 and mailbox_messages(store, ALICE) == []


def test_forged_from_by_bdat_is_refused_too(bob, registry, store):
    bob.send(f"MAIL FROM:<{BOB}>\r\nRCPT TO:<{CAROL}>\r\n".encode())
    data = body(f"From: {ALICE}")
    first, rest = data[:10], data[10:]
    assert bob.send(b"BDAT %d\r\n" % len(first) + first)[-1].code == 250
    reply = bob.send(b"BDAT %d LAST\r\n" % len(rest) + rest)[-1]
    assert (reply.code, reply.text[:6]) == (553, "5.7.1 ")
    assert nothing_stored(registry, store)


def test_own_address_alias_and_display_name_are_fine(bob, registry, store):
    registry.db.sync.run("alias", accounts.add_alias, "bob.b@example.test", BOB)
    for header in (f"From: {BOB}", f"From: \"Bob B\" <bob.b@example.test>\r\nSender: {BOB}",
                   f"From: {BOB.upper()}", "From: undisclosed:;"):
        assert bob.mail(BOB, [CAROL], body(header))[-1].code == 250, header
    assert len(mailbox_messages(store, CAROL)) == 4


def test_send_as_grant_for_a_shared_address(bob, registry, store):
    shared = "shared@example.test"
    refused = bob.cmd(f"MAIL FROM:<{shared}>")
    assert (refused.code, refused.text[:6]) == (553, "5.7.1 ")
    assert bob.mail(BOB, [CAROL], body(f"From: {shared}"))[-1].code == 553
    registry.db.sync.run("grant", sendas.grant, BOB, shared)
    replies = bob.mail(shared, [CAROL, REMOTE], body(f"From: Shared <{shared}>\r\nSender: {BOB}"))
    assert [r.code for r in replies] == [250, 250, 250, 354, 250], replies
    assert len(queue_rows(registry)) == 1 and len(mailbox_messages(store, CAROL)) == 1
    registry.db.sync.run("revoke", sendas.revoke, BOB, shared)
    assert bob.mail(BOB, [CAROL], body(f"From: {shared}"))[-1].code == 553


def test_own_resent_from_is_fine(bob, registry, store):
    assert bob.mail(BOB, [CAROL], body(f"From: {ALICE}\r\nResent-From: Bob <{BOB}>\r\nResent-Sender: {BOB}"))[-1].code \
        == 553  # the original From is still checked
    assert bob.mail(BOB, [CAROL], body(f"From: {BOB}\r\nResent-From: Bob <{BOB}>\r\nResent-Sender: {BOB}"))[-1].code \
        == 250
    assert len(mailbox_messages(store, CAROL)) == 1


# -- bare CR (item 9) ----------------------------------------------------------------------------

BARE_CR = [
    b"Subject: x\r\n\r\nline\r.\r\nMAIL FROM:<a@b.c>\r\n",      # \r.\r\n: a smuggling terminator downstream
    b"Subject: x\r\n\r\none\rtwo\r\n",
    b"Subject: x\rBcc: victim@remote.test\r\n\r\nbody\r\n",
    b"Subject: x\r\n\r\nbody\r\r\n",
]


@pytest.mark.parametrize("data", BARE_CR)
def test_bare_cr_is_refused_on_submission(bob, registry, store, data):
    replies = bob.mail(BOB, [CAROL, REMOTE], f"From: {BOB}\r\n".encode() + data)
    assert (replies[-1].code, replies[-1].text[:6]) == (554, "5.6.0 "), replies
    assert nothing_stored(registry, store)
    assert bob.mail(BOB, [CAROL], body(f"From: {BOB}"))[-1].code == 250


def test_bare_cr_in_bdat_chunks(bob, registry, store):
    start = f"MAIL FROM:<{BOB}>\r\nRCPT TO:<{REMOTE}>\r\n".encode()
    # a CRLF split across two chunks is a line end, not a bare CR
    bob.send(start)
    one = f"From: {BOB}\r".encode()
    assert bob.send(b"BDAT %d\r\n" % len(one) + one)[-1].code == 250
    two = b"\nSubject: ok\r\n\r\nfine\r\n"
    assert bob.send(b"BDAT %d LAST\r\n" % len(two) + two)[-1].code == 250
    assert len(queue_rows(registry)) == 1
    # a CR at the end of one chunk and no LF at the start of the next is bare
    bob.send(start)
    assert bob.send(b"BDAT %d\r\n" % len(one) + one)[-1].code == 250
    three = b"Subject: x\r\n\r\n.\r\n"
    reply = bob.send(b"BDAT %d LAST\r\n" % len(three) + three)[-1]
    assert (reply.code, reply.text[:6]) == (554, "5.6.0 ")
    assert len(queue_rows(registry)) == 1


def test_mx_stores_bare_cr_for_local_mailboxes_but_does_not_relay_it(registry, store):
    registry.db.sync.run("alias", accounts.add_alias, "fwd@example.test", REMOTE)
    mx = Client(make_factory(registry, store, "smtp"))
    mx.ehlo()
    data = b"From: x@remote.test\r\nSubject: cr\r\n\r\nline\r.\r\nmore\r\n"
    assert mx.mail("x@remote.test", [CAROL], data)[-1].code == 250
    assert strip_trace(mailbox_messages(store, CAROL)[0]) == data
    replies = mx.mail("x@remote.test", ["fwd@example.test"], data)
    assert (replies[-1].code, replies[-1].text[:6]) == (554, "5.6.0 ")
    assert queue_rows(registry) == []


# -- NUL bytes (item 9, re-review) ---------------------------------------------------------------

NUL = [b"Subject: x\r\n\r\nline\x00more\r\n", b"Subject: x\x00\r\nBcc: v@remote.test\r\n\r\nbody\r\n",
       b"Subject: x\r\n\r\n\x00\r\n"]


@pytest.mark.parametrize("data", NUL)
def test_nul_is_refused_on_submission(bob, registry, store, data):
    replies = bob.mail(BOB, [CAROL, REMOTE], f"From: {BOB}\r\n".encode() + data)
    assert (replies[-1].code, replies[-1].text[:6]) == (554, "5.6.0 "), replies
    assert nothing_stored(registry, store)
    assert bob.mail(BOB, [CAROL], body(f"From: {BOB}"))[-1].code == 250


def test_nul_in_bdat_chunks_is_refused(bob, registry, store):
    bob.send(f"MAIL FROM:<{BOB}>\r\nRCPT TO:<{REMOTE}>\r\n".encode())
    one = f"From: {BOB}\r\nSubject: x\r\n\r\n".encode()
    assert bob.send(b"BDAT %d\r\n" % len(one) + one)[-1].code == 250
    two = b"a\x00b\r\n"
    reply = bob.send(b"BDAT %d LAST\r\n" % len(two) + two)[-1]
    assert (reply.code, reply.text[:6]) == (554, "5.6.0 ")
    assert nothing_stored(registry, store)


def test_mx_stores_nul_for_local_mailboxes_but_does_not_relay_it(registry, store):
    registry.db.sync.run("alias", accounts.add_alias, "fwd@example.test", REMOTE)
    mx = Client(make_factory(registry, store, "smtp"))
    mx.ehlo()
    data = b"From: x@remote.test\r\nSubject: nul\r\n\r\nline\x00more\r\n"
    assert mx.mail("x@remote.test", [CAROL], data)[-1].code == 250
    assert strip_trace(mailbox_messages(store, CAROL)[0]) == data
    replies = mx.mail("x@remote.test", ["fwd@example.test"], data)
    assert (replies[-1].code, replies[-1].text[:6]) == (554, "5.6.0 ")
    assert queue_rows(registry) == []
