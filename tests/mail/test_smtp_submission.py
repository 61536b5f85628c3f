"""Submission in-process: STARTTLS before AUTH, AUTH PLAIN/LOGIN, sender ownership, Sent copies, queue."""

from __future__ import annotations

import base64
import json
import time

import pytest
from twisted.logger import globalLogPublisher

from tau.auth import accounts
from tests.support.harness import add_user, resolve
from tests.support.smtp import Client, mail_store, mailbox_messages, make_factory, message, strip_trace

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"


@pytest.fixture
def store(registry):
    add_user(registry, ALICE)
    add_user(registry, BOB)
    return mail_store(registry)


@pytest.fixture
def sub(registry, store):
    return make_factory(registry, store, "submission")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def queue_rows(registry) -> list[tuple]:
    return registry.db.sync.run("q", lambda txn: txn.query(
        "SELECT mail_from, rcpt_to, blob_key, message_id, status FROM outbound_queue ORDER BY id"))


def test_unauthenticated_client_is_a_stranger_even_from_loopback(sub):
    c = Client(sub, ip="127.0.0.1")
    c.ehlo()
    before_tls = c.cmd(f"MAIL FROM:<{ALICE}>")
    assert (before_tls.code, before_tls.text) == (530, "5.7.0 Must issue a STARTTLS command first")
    c.starttls()
    no_auth = c.cmd(f"MAIL FROM:<{ALICE}>")
    assert (no_auth.code, no_auth.text) == (530, "5.7.0 Authentication required")
    assert c.cmd("RCPT TO:<bob@example.test>").code == 530
    assert c.cmd("DATA").code == 530


def test_auth_before_starttls_is_refused(sub):
    c = Client(sub)
    c.ehlo()
    reply = c.cmd(f"AUTH PLAIN {b64(chr(0) + ALICE + chr(0) + PASSWORD)}")
    assert (reply.code, reply.text[:5]) == (530, "5.7.0")


def test_auth_not_offered_on_mx(registry, store):
    c = Client(make_factory(registry, store, "smtp"))
    c.ehlo()
    c.starttls()
    assert c.login(ALICE, PASSWORD).code == 503


def test_wrong_password(sub, registry):
    c = Client(sub)
    c.ehlo()
    c.starttls()
    reply = c.login(ALICE, "wrong-password")
    assert (reply.code, reply.text) == (535, "5.7.8 Authentication credentials invalid")
    assert c.login("nobody@example.test", PASSWORD).code == 535
    assert registry.metrics.logins.labels("smtp", "failed")._value.get() == 2
    assert c.login(ALICE, PASSWORD).code == 235
    assert c.login(ALICE, PASSWORD).code == 503                  # already authenticated


def test_auth_plain_with_challenge(sub):
    c = Client(sub)
    c.ehlo()
    c.starttls()
    assert (c.cmd("AUTH PLAIN").code, c.read()) == (334, [])
    assert c.cmd(b64(f"\0{ALICE}\0{PASSWORD}")).code == 235


def test_auth_login(sub):
    c = Client(sub)
    c.ehlo()
    c.starttls()
    first = c.cmd("AUTH LOGIN")
    assert (first.code, base64.b64decode(first.text)) == (334, b"Username:")
    second = c.cmd(b64(ALICE))
    assert (second.code, base64.b64decode(second.text)) == (334, b"Password:")
    assert c.cmd(b64(PASSWORD)).code == 235


def test_auth_login_with_initial_response(sub):
    c = Client(sub)
    c.ehlo()
    c.starttls()
    assert c.cmd(f"AUTH LOGIN {b64(ALICE)}").code == 334
    assert c.cmd(b64(PASSWORD)).code == 235


@pytest.mark.parametrize("lines, code", [
    (["AUTH PLAIN", "*"], 501),                                  # cancelled
    (["AUTH PLAIN", "not base64!!"], 501),
    ([f"AUTH PLAIN {b64('no-nuls-here')}"], 501),
    (["AUTH CRAM-MD5"], 504),
    ([f"AUTH PLAIN {b64(f'{BOB}{chr(0)}{ALICE}{chr(0)}{PASSWORD}')}"], 535),   # acting as someone else
    (["AUTH LOGIN", b64(ALICE), "*"], 501),
])
def test_bad_auth_exchanges(sub, lines, code):
    c = Client(sub)
    c.ehlo()
    c.starttls()
    for line in lines:
        reply = c.cmd(line)
    assert reply.code == code
    assert c.cmd("NOOP").code == 250                               # back in command mode
    assert c.login(ALICE, PASSWORD).code == 235


def test_sender_must_be_own_address_or_alias(sub, registry):
    registry.db.sync.run("alias", accounts.add_alias, "info@example.test", ALICE)
    c = Client(sub)
    c.submit_ready(ALICE, PASSWORD)
    spoof = c.cmd(f"MAIL FROM:<{BOB}>")
    assert (spoof.code, spoof.text[:5]) == (553, "5.7.1")
    assert c.cmd("MAIL FROM:<ceo@remote.test>").code == 553
    assert c.cmd("MAIL FROM:<>").code == 553
    assert c.cmd("MAIL FROM:<Alice@Example.Test>").code == 250
    c.cmd("RSET")
    assert c.cmd("MAIL FROM:<info@example.test>").code == 250


def test_local_recipient_and_sent_copy(sub, store, registry):
    c = Client(sub)
    c.submit_ready(ALICE, PASSWORD)
    body = message(sender=ALICE, to=BOB)
    replies = c.mail(ALICE, [BOB], body)
    assert replies[-1].code == 250
    [delivered] = mailbox_messages(store, BOB)
    [sent] = mailbox_messages(store, ALICE, "Sent")
    assert strip_trace(delivered) == body and sent == delivered
    assert b"with ESMTPSA id" in delivered and not delivered.startswith(b"Return-Path")
    assert mailbox_messages(store, ALICE) == []
    info = resolve(store.get_mailbox(ALICE, "Sent"))
    [meta] = resolve(store.fetch(info.id, resolve(store.uids(info.id))))
    assert "\\Seen" in meta.flags
    assert queue_rows(registry) == []


def test_remote_recipients_are_queued(sub, store, registry):
    c = Client(sub)
    c.submit_ready(ALICE, PASSWORD)
    body = message(subject="out", sender=ALICE, to="carol@remote.test")
    replies = c.mail(ALICE, ["carol@remote.test", "dave@other.test", BOB], body)
    assert [r.code for r in replies] == [250, 250, 250, 250, 354, 250]
    [(mail_from, rcpt_to, blob_key, message_id, status)] = queue_rows(registry)
    assert (mail_from, status, message_id) == (ALICE, "queued", "<out@remote.test>")
    assert sorted(json.loads(rcpt_to)) == ["carol@remote.test", "dave@other.test"]
    assert strip_trace(registry.blobs.sync.read(blob_key)) == body
    assert len(mailbox_messages(store, BOB)) == 1 and len(mailbox_messages(store, ALICE, "Sent")) == 1


def test_sent_copy_skipped_when_sender_over_quota(sub, store, registry):
    registry.db.sync.run("q", lambda txn: txn.execute(
        "UPDATE users SET quota_bytes = 10 WHERE address = ?", (ALICE,)))
    c = Client(sub)
    c.submit_ready(ALICE, PASSWORD)
    assert c.mail(ALICE, ["carol@remote.test"], message(sender=ALICE))[-1].code == 250
    assert len(queue_rows(registry)) == 1 and mailbox_messages(store, ALICE, "Sent") == []


def test_submissions_implicit_tls(registry, store):
    c = Client(make_factory(registry, store, "submissions"))
    c.ehlo()
    assert c.login(ALICE, PASSWORD).code == 235
    assert c.mail(ALICE, [BOB], message(sender=ALICE))[-1].code == 250
    assert b"with ESMTPSA id" in mailbox_messages(store, BOB)[0]


def test_thousand_rapid_failed_auths_are_throttled_and_logged(sub, registry):
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    started = time.monotonic()
    codes: list[int] = []
    try:
        while len(codes) < 1000:
            c = Client(sub, ip="203.0.113.9")
            c.ehlo()
            c.starttls()
            while not c.closed and len(codes) < 1000:
                token = b64(f"\0{ALICE}\0guess-{len(codes)}")
                codes.append(c.send(f"AUTH PLAIN {token}\r\n")[0].code)
            c.disconnect()
    finally:
        globalLogPublisher.removeObserver(events.append)
    elapsed = time.monotonic() - started
    assert set(codes) <= {535, 454}
    assert codes.count(535) <= 10 and codes.count(454) >= 990   # the throttle answers, argon2 is not run
    assert elapsed < 20
    assert registry.metrics.logins.labels("smtp", "throttled")._value.get() == codes.count(454)
    texts = [e.get("log_format", "") for e in events]
    assert any("login_throttled" in t for t in texts) and any("smtp auth throttled" in t for t in texts)
    # the right password is refused too while the lock lasts, then works once it has passed
    c = Client(sub, ip="203.0.113.9")
    c.ehlo()
    c.starttls()
    assert c.login(ALICE, PASSWORD).code == 454
    registry.reactor.advance(3600)
    c = Client(sub, ip="203.0.113.9")
    c.ehlo()
    c.starttls()
    assert c.login(ALICE, PASSWORD).code == 235
