"""APPEND (RFC 3501 §6.3.11, APPENDUID RFC 4315, TRYCREATE) and IDLE (RFC 2177) pushing changes
made by other sessions through the bus."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


def append_cmd(tag: str, mailbox: str, raw: bytes, extra: str = "") -> bytes:
    return f"{tag} APPEND {mailbox}{extra} {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n"


def test_append_with_flags_and_date(env):
    c = env.client(ALICE)
    raw = message(1)
    out = c.send(append_cmd("a", "INBOX", raw, ' (\\Seen $Work) "17-Jul-1996 02:44:25 -0700"')).decode()
    m = re.fullmatch(r"a OK \[APPENDUID (\d+) 1\] Append completed\r\n", out)
    assert m
    c.ok("b SELECT INBOX")
    assert c.ok("c FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)") == [
        f'* 1 FETCH (FLAGS (\\Seen $Work \\Recent) INTERNALDATE "17-Jul-1996 09:44:25 +0000" RFC822.SIZE {len(raw)})']
    assert c.send(b"d FETCH 1 BODY.PEEK[]\r\n").split(b"\r\n", 1)[1].startswith(raw)


def test_append_synchronizing_literal(env):
    c = env.client(ALICE)
    raw = message(2)
    assert c.send(f"a APPEND Drafts (\\Draft) {{{len(raw)}}}\r\n".encode()) == b"+ Ready for literal data\r\n"
    assert c.send(raw + b"\r\n").startswith(b"a OK [APPENDUID ")


def test_append_to_selected_mailbox_announces_exists(env):
    c = env.client(ALICE, mailbox="INBOX")
    out = c.send(append_cmd("a", "INBOX", message(1))).decode().split("\r\n")
    assert out[:2] == ["* 1 EXISTS", "* 1 RECENT"] and out[2].startswith("a OK [APPENDUID")


def test_append_refusals(env):
    c = env.client(ALICE)
    assert c.send(append_cmd("a", "Nowhere", message(1))) == b"a NO [TRYCREATE] Mailbox doesn't exist\r\n"
    assert c.send(b"b APPEND INBOX {0+}\r\n\r\n").startswith(b"b NO")
    assert c.send(append_cmd("c", "INBOX", message(1), ' "31-Foo-2020 00:00:00 +0000"')).startswith(b"c BAD")
    assert c.send(append_cmd("d", "INBOX", message(1), " (\\Bogus)")).startswith(b"d BAD")
    assert c.send(b'e APPEND INBOX "not a date, not a literal"\r\n').startswith(b"e BAD")


def test_append_over_quota(registry):
    registry.config.limits = replace(registry.config.limits, quota_bytes=2000)
    env = IMAPEnv(registry)
    env.add_user(ALICE)
    c = env.client(ALICE)
    assert c.send(append_cmd("a", "INBOX", message(1))).startswith(b"a OK")
    big = message(2, body="y" * 3000)
    assert c.send(append_cmd("b", "INBOX", big)).startswith(b"b NO [OVERQUOTA]")


def test_idle_sees_append_from_another_session(env):
    idler = env.client(ALICE, mailbox="INBOX")
    assert idler.send(b"i IDLE\r\n") == b"+ idling\r\n"
    other = env.client(ALICE)
    other.send(append_cmd("a", "INBOX", message(1)))
    assert idler.output() == b"* 1 EXISTS\r\n* 1 RECENT\r\n"
    env.append(ALICE, message(2), recent=True)  # e.g. SMTP delivery
    assert idler.output() == b"* 2 EXISTS\r\n* 2 RECENT\r\n"
    assert idler.send(b"done\r\n") == b"i OK Idle completed\r\n"


def test_idle_sees_expunge_and_flags(env):
    for i in range(3):
        env.append(ALICE, message(i))
    idler = env.client(ALICE, mailbox="INBOX")
    idler.send(b"i IDLE\r\n")
    other = env.client(ALICE, mailbox="INBOX")
    other.ok("a STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert idler.output() == b"* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\n"
    other.ok("b STORE 1 +FLAGS.SILENT (\\Deleted)")
    idler.output()
    other.ok("c EXPUNGE")
    assert idler.output() == b"* 1 EXPUNGE\r\n"
    assert idler.send(b"DONE\r\n") == b"i OK Idle completed\r\n"
    assert idler.ok("d FETCH 1:* UID") == ["* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)"]


def test_idle_with_condstore_reports_modseq(env):
    env.append(ALICE, message(1))
    idler = env.client(ALICE)
    idler.ok("e ENABLE CONDSTORE")
    idler.ok("s SELECT INBOX")
    idler.send(b"i IDLE\r\n")
    env.client(ALICE, mailbox="INBOX").ok("a STORE 1 +FLAGS.SILENT (\\Seen)")
    assert re.fullmatch(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)\r\n", idler.output())


def test_idle_ignores_other_mailboxes_and_users(env):
    env.add_user("bob@example.test")
    idler = env.client(ALICE, mailbox="INBOX")
    idler.send(b"i IDLE\r\n")
    env.append(ALICE, message(1), mailbox="Trash")
    env.append("bob@example.test", message(2))
    assert idler.output() == b""
    assert idler.send(b"DONE\r\n") == b"i OK Idle completed\r\n"


def test_idle_without_mailbox_and_pipelined_done(env):
    c = env.client(ALICE)
    assert c.send(b"i IDLE\r\nDONE\r\nn NOOP\r\n") == b"+ idling\r\ni OK Idle completed\r\nn OK NOOP completed\r\n"


def test_idle_needs_done(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.send(b"i IDLE\r\n")
    assert c.send(b"x NOOP\r\n") == b"i BAD Expected DONE to end IDLE\r\n"
    assert c.cmd("y NOOP") == ["y OK NOOP completed"]


def test_idle_reports_changes_pending_from_before(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.proto.selected.dirty = True  # as if an event had been missed
    resolve_append = env.append(ALICE, message(1))
    assert resolve_append == 1
    out = c.send(b"i IDLE\r\n")
    assert out == b"* 1 EXISTS\r\n+ idling\r\n"


def test_many_idlers_share_one_query_per_change(env, monkeypatch):
    idlers = [env.client(ALICE, mailbox="INBOX") for _ in range(20)]
    for c in idlers:
        assert c.send(b"i IDLE\r\n") == b"+ idling\r\n"
    calls = []
    real_uids = env.store.uids

    async def counting_uids(mailbox_id, **kw):
        calls.append(mailbox_id)
        return await real_uids(mailbox_id, **kw)

    monkeypatch.setattr(env.store, "uids", counting_uids)
    claims = []
    real_claim = env.store.claim_recent

    async def counting_claims(mailbox_id, upto):
        claims.append(upto)
        return await real_claim(mailbox_id, upto)

    monkeypatch.setattr(env.store, "claim_recent", counting_claims)
    env.append(ALICE, message(1), recent=True)
    outputs = [c.output() for c in idlers]
    assert sorted(outputs) == [b"* 1 EXISTS\r\n"] * 19 + [b"* 1 EXISTS\r\n* 1 RECENT\r\n"]  # one gets \Recent
    assert len(calls) == 1 and len(claims) == 1
    env.append(ALICE, message(2), recent=True)
    outputs = [c.output() for c in idlers]
    assert sum(o.startswith(b"* 2 EXISTS\r\n") for o in outputs) == 20
    assert sum(b"RECENT" in o for o in outputs) == 1
    assert len(calls) == 2 and len(claims) == 2
