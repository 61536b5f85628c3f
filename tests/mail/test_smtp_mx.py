"""MX delivery in-process, through the real mail store: what is stored, what is refused, bad input."""

from __future__ import annotations

import os

import pytest

from tau.auth import accounts
from tests.support.blobfiles import stored_blobs
from tests.support.harness import add_user
from tests.support.smtp import Client, mail_store, mailbox_messages, make_factory, message, strip_trace


@pytest.fixture
def store(registry):
    add_user(registry, "alice@example.test")
    add_user(registry, "bob@example.test")
    return mail_store(registry)


@pytest.fixture
def mx(registry, store):
    return make_factory(registry, store, "smtp")


def inbox(store, user="alice@example.test", mailbox="INBOX"):
    return mailbox_messages(store, user, mailbox)


def blob_files(registry) -> list[str]:
    return stored_blobs(registry.blob_backend.root)


def test_delivery_stores_exact_bytes_with_trace_headers(mx, store):
    c = Client(mx)
    c.ehlo("sender.remote.test")
    body = message(body="line one\r\n.leading dot\r\n..two dots\r\n")
    replies = c.mail("someone@remote.test", ["alice@example.test"], body)
    assert [r.code for r in replies] == [250, 250, 354, 250]
    assert replies[-1].text.startswith("2.0.0 Ok: queued as ")
    queue_id = replies[-1].text.rsplit(" ", 1)[1]
    [raw] = inbox(store)
    assert raw.startswith(b"Return-Path: <someone@remote.test>\r\nReceived: from sender.remote.test ([192.0.2.10])")
    assert f"with ESMTP id {queue_id}".encode() in raw and b"for <alice@example.test>;" in raw
    assert strip_trace(raw) == body                             # dot-unstuffed, otherwise untouched
    assert inbox(store, "bob@example.test") == []


def test_second_user_sees_nothing_of_the_first(mx, store):
    c = Client(mx)
    c.ehlo()
    c.mail("x@remote.test", ["bob@example.test"], message(subject="for-bob"))
    assert len(inbox(store, "bob@example.test")) == 1
    assert inbox(store, "alice@example.test") == []


def test_several_recipients_one_blob_no_for_clause(mx, store):
    c = Client(mx)
    c.ehlo()
    replies = c.mail("x@remote.test", ["alice@example.test", "bob@example.test"], message())
    assert replies[-1].code == 250
    [a], [b] = inbox(store), inbox(store, "bob@example.test")
    assert a == b and b"\tfor <" not in a                      # Bcc privacy: no recipient in Received


def test_unknown_user_and_relay(mx, store):
    c = Client(mx)
    c.ehlo()
    c.cmd("MAIL FROM:<x@remote.test>")
    unknown = c.cmd("RCPT TO:<nobody@example.test>")
    assert unknown.code == 550 and unknown.text.startswith("5.1.1")
    relay = c.cmd("RCPT TO:<victim@elsewhere.test>")
    assert (relay.code, relay.text) == (554, "5.7.1 Relay access denied")


def test_relay_refused_even_from_loopback(registry, store):
    c = Client(make_factory(registry, store, "smtp"), ip="127.0.0.1")
    c.ehlo()
    c.cmd("MAIL FROM:<alice@example.test>")
    assert c.cmd("RCPT TO:<victim@elsewhere.test>").code == 554


def test_aliases_and_catch_all(mx, store, registry):
    db = registry.db.sync
    db.run("alias", accounts.add_alias, "sales@example.test", "bob@example.test")
    db.run("alias", accounts.add_alias, "team@example.test", "alice@example.test")
    db.run("alias", accounts.add_alias, "team@example.test", "bob@example.test")
    c = Client(mx)
    c.ehlo()
    assert c.mail("x@remote.test", ["sales@example.test"], message(subject="s"))[-1].code == 250
    assert c.mail("x@remote.test", ["team@example.test"], message(subject="t"))[-1].code == 250
    assert c.mail("x@remote.test", ["random@example.test"], message())[1].code == 550   # no catch-all yet
    db.run("alias", accounts.add_alias, "@example.test", "alice@example.test")
    assert c.mail("x@remote.test", ["Random@Example.Test"], message(subject="c"))[-1].code == 250
    assert [b"Subject: t" in m or b"Subject: c" in m for m in inbox(store)] == [True, True]
    assert len(inbox(store, "bob@example.test")) == 2


def test_postmaster_without_domain(mx, registry, store):
    registry.db.sync.run("alias", accounts.add_alias, "postmaster@example.test", "alice@example.test")
    c = Client(mx)
    c.ehlo()
    c.cmd("MAIL FROM:<>")
    assert c.cmd("RCPT TO:<Postmaster>").code == 250            # RFC 5321 §4.1.1.3


def test_bare_lf_is_normalised(mx, store):
    c = Client(mx)
    c.ehlo()
    c.send(b"MAIL FROM:<x@remote.test>\nRCPT TO:<alice@example.test>\nDATA\n")
    replies = c.send(b"Subject: lf\nX-A: 1\n\nbody line\nsecond\r\n.\r\n")
    assert replies[-1].code == 250
    assert strip_trace(inbox(store)[0]) == b"Subject: lf\r\nX-A: 1\r\n\r\nbody line\r\nsecond\r\n"


def test_bare_lf_dot_does_not_end_the_message(mx, store):
    """SMTP smuggling: only CRLF.CRLF ends DATA, so a second message cannot be smuggled in."""
    c = Client(mx)
    c.ehlo()
    c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    smuggled = (b"Subject: one\r\n\r\nhello\n.\nMAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
                b"DATA\r\nSubject: smuggled\r\n\r\n.\r\n")
    replies = c.send(smuggled)
    assert [r.code for r in replies] == [250]
    [raw] = inbox(store)
    assert b"Subject: smuggled" in raw and inbox(store, "bob@example.test") == []


def test_nul_bytes_are_stored_as_delivered(mx, store):
    c = Client(mx)
    c.ehlo()
    body = b"Subject: nul\x00here\r\n\r\nbinary \x00\x01\x02 stuff\r\n"
    assert c.mail("x@remote.test", ["alice@example.test"], body)[-1].code == 250
    assert strip_trace(inbox(store)[0]) == body


@pytest.mark.parametrize("body", [
    b"no header at all, just text\r\n",
    b"Subject: =?utf-8?B?broken\r\nContent-Type: multipart/mixed; boundary=\"never\"\r\n\r\n--nope\r\n",
    b"From: <<<@@@>>>\r\nTo: ,,,;\r\nDate: yesterday-ish\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64\r\n",
    b"\r\n\r\n",
    b"Subject: \xff\xfe latin junk \xe9\r\n\r\n\xe9t\xe9\r\n",
])
def test_malformed_messages_are_stored_as_delivered(mx, store, body):
    c = Client(mx)
    c.ehlo()
    assert c.mail("x@remote.test", ["alice@example.test"], body)[-1].code == 250
    assert strip_trace(inbox(store)[0]) == body


def test_message_over_the_size_limit_leaves_nothing(registry, store):
    mx = make_factory(registry, store, "smtp", max_size=100_000)
    c = Client(mx)
    c.ehlo()
    replies = c.mail("x@remote.test", ["alice@example.test"], message(body="y" * 70 + "\r\n") * 2000)
    assert (replies[-1].code, replies[-1].text[:5]) == (552, "5.3.4")
    assert inbox(store) == [] and blob_files(registry) == []
    # the connection is still usable
    assert c.mail("x@remote.test", ["alice@example.test"], message())[-1].code == 250


def test_disconnect_mid_data_leaves_nothing(mx, store, registry, monkeypatch):
    from tau.mail.smtp import message as message_module

    monkeypatch.setattr(message_module, "HOLD_LIMIT", 50_000)  # above it the message streams to the blob
    c = Client(mx)
    c.ehlo()
    c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    c.send(b"Subject: cut\r\n\r\n" + (b"z" * 76 + b"\r\n") * 3000)   # > one blob chunk: a temp file exists
    assert os.listdir(registry.blob_backend.tmp) != []
    c.disconnect()
    assert inbox(store) == []
    assert blob_files(registry) == []                          # tmp/ is empty and nothing was published


def test_endless_data_line_is_streamed_and_bounded_by_the_size_limit(mx, store, registry):
    mx.max_size = 150_000
    c = Client(mx)
    c.ehlo()
    c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    for _ in range(4):                                          # one line, 400 KB, no newline yet
        assert c.send(b"Subject: x\r\n\r\n" + b"q" * 100_000) == []
        assert len(c.protocol._inbuf) <= 64 * 1024              # passed on in pieces, not held
    assert [(r.code, r.text[:5]) for r in c.send(b"\r\nmore\r\n.\r\n")] == [(552, "5.3.4")]
    assert inbox(store) == [] and blob_files(registry) == []
    assert c.mail("x@remote.test", ["alice@example.test"], message())[-1].code == 250


def test_bdat_chunks(mx, store):
    c = Client(mx)
    c.ehlo()
    c.cmd("MAIL FROM:<x@remote.test> BODY=8BITMIME")
    c.cmd("RCPT TO:<alice@example.test>")
    part1, part2 = b"Subject: chunked\r", b"\n\r\nbody with bare\nLF\r\n"
    replies = c.send(b"BDAT %d\r\n%sBDAT %d LAST\r\n%s" % (len(part1), part1, len(part2), part2))
    assert [r.code for r in replies] == [250, 250]
    assert strip_trace(inbox(store)[0]) == b"Subject: chunked\r\n\r\nbody with bare\r\nLF\r\n"


def test_bdat_without_transaction_consumes_its_bytes(mx, store):
    c = Client(mx)
    c.ehlo()
    replies = c.send(b"BDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n")
    assert [r.code for r in replies] == [503, 250]
    assert not c.closed
    assert c.cmd("BDAT x").code == 501 and c.closed            # unknown length: cannot resync


def test_data_after_bdat_is_refused(mx):
    c = Client(mx)
    c.ehlo()
    c.cmd("MAIL FROM:<x@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.send(b"BDAT 3\r\nabc")[-1].code == 250
    assert c.cmd("DATA").code == 503


def test_smtputf8_addresses(mx, registry, store):
    c = Client(mx)
    c.ehlo()
    reply = c.cmd("MAIL FROM:<j\u00fcrgen@remote.test>".encode())
    assert (reply.code, reply.text[:5]) == (553, "5.6.7")
    assert c.cmd("MAIL FROM:<j\u00fcrgen@remote.test> SMTPUTF8".encode()).code == 250
    assert c.cmd("RCPT TO:<alice@example.test>").code == 250
    assert c.send(b"DATA\r\n")[-1].code == 354
    assert c.send("Subject: gr\u00fc\u00dfe\r\n\r\nhi\r\n.\r\n".encode())[-1].code == 250
    assert b"with UTF8SMTP id" in inbox(store)[0]


def test_quota_refused_at_rcpt(registry, store):
    registry.db.sync.run("q", lambda txn: txn.execute(
        "UPDATE users SET quota_bytes = 2000 WHERE address = 'bob@example.test'"))
    c = Client(make_factory(registry, store, "smtp"))
    c.ehlo()
    assert c.mail("x@remote.test", ["bob@example.test"], message())[-1].code == 250
    c.cmd("MAIL FROM:<x@remote.test> SIZE=5000")
    reply = c.cmd("RCPT TO:<bob@example.test>")
    assert (reply.code, reply.text[:5]) == (552, "5.2.2")
    assert c.cmd("RCPT TO:<alice@example.test>").code == 250


def test_quota_refused_at_end_of_data(registry, store):
    """Without SIZE the RCPT check passes; the store refuses in the delivering transaction."""
    registry.db.sync.run("q", lambda txn: txn.execute(
        "UPDATE users SET quota_bytes = 3000 WHERE address = 'bob@example.test'"))
    c = Client(make_factory(registry, store, "smtp"))
    c.ehlo()
    replies = c.mail("x@remote.test", ["bob@example.test"], message(body="b" * 70 + "\r\n") * 60)
    assert (replies[-1].code, replies[-1].text[:5]) == (552, "5.2.2")
    assert inbox(store, "bob@example.test") == []


def test_alias_forwarding_off_site_is_queued(mx, registry, store):
    registry.db.sync.run("alias", accounts.add_alias, "fwd@example.test", "alice@example.test")
    registry.db.sync.run("alias", accounts.add_alias, "fwd@example.test", "me@elsewhere.test")
    c = Client(mx)
    c.ehlo()
    assert c.mail("x@remote.test", ["fwd@example.test"], message(subject="fwd"))[-1].code == 250
    assert len(inbox(store)) == 1
    rows = registry.db.sync.run("q", lambda txn: txn.query("SELECT user_id, mail_from, rcpt_to FROM outbound_queue"))
    assert rows == [(None, "x@remote.test", '["me@elsewhere.test"]')]
