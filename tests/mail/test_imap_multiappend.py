"""MULTIAPPEND (RFC 3502): several messages in one APPEND, stored all or none, answered with an
APPENDUID uid-set; APPENDLIMIT (RFC 7889) from ``[limits] message_size``."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"


def env_with(registry, **limits) -> IMAPEnv:
    registry.config.limits = replace(registry.config.limits, **limits)
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


@pytest.fixture
def env(registry):
    return env_with(registry)


def literal(raw: bytes) -> bytes:
    return b"{%d+}\r\n%s" % (len(raw), raw)


def multiappend(tag: str, mailbox: str, *parts: tuple[str, bytes]) -> bytes:
    """``tag APPEND mailbox [flags date] literal [flags date] literal ...``"""
    out = f"{tag} APPEND {mailbox}".encode()
    for extra, raw in parts:
        out += b" " + (extra.encode() + b" " if extra else b"") + literal(raw)
    return out + b"\r\n"


def test_three_messages_in_one_append(env):
    c = env.client(ALICE)
    out = c.send(multiappend("a", "Drafts", ("(\\Draft)", message(1)), ("", message(2)),
                             ('(\\Seen) "17-Jul-1996 02:44:25 -0700"', message(3)))).decode()
    assert re.fullmatch(r"a OK \[APPENDUID \d+ 1:3\] Append completed\r\n", out), out
    c.select("Drafts")  # the first SELECT after delivery: all three are \Recent in this session
    assert c.ok("f FETCH 1:3 (FLAGS INTERNALDATE)")[2] == \
        '* 3 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "17-Jul-1996 09:44:25 +0000")'
    assert c.ok("g FETCH 1:2 FLAGS") == ["* 1 FETCH (FLAGS (\\Draft \\Recent))", "* 2 FETCH (FLAGS (\\Recent))"]
    assert c.send(b"h FETCH 2 BODY.PEEK[]\r\n").split(b"\r\n", 1)[1].startswith(message(2))


def test_all_or_none_when_the_quota_runs_out(registry):
    env = env_with(registry, quota_bytes=3000)
    c = env.client(ALICE)
    small, big = message(1), message(2, body="y" * 2800)
    out = c.send(multiappend("a", "INBOX", ("", small), ("", small), ("", big)))
    assert out.startswith(b"a NO [OVERQUOTA]")
    assert c.ok("b STATUS INBOX (MESSAGES)") == ['* STATUS "INBOX" (MESSAGES 0)']
    assert c.ok("c GETQUOTAROOT INBOX")[1] == '* QUOTA "" (STORAGE 0 2)'
    assert c.send(multiappend("d", "INBOX", ("", small), ("", small))).startswith(b"d OK [APPENDUID ")


def test_missing_mailbox_stores_nothing(env):
    c = env.client(ALICE)
    assert c.send(multiappend("a", "Nowhere", ("", message(1)), ("", message(2)))) == \
        b"a NO [TRYCREATE] Mailbox doesn't exist\r\n"
    assert c.ok("b STATUS INBOX (MESSAGES)") == ['* STATUS "INBOX" (MESSAGES 0)']


def test_one_bad_message_refuses_the_whole_command(env):
    c = env.client(ALICE)
    out = c.send(multiappend("a", "INBOX", ("", message(1)), ("(\\Bogus)", message(2))))
    assert out.startswith(b"a BAD")
    assert c.send(multiappend("b", "INBOX", ("", message(1)), ("", b""))).startswith(b"b NO")
    assert c.ok("c STATUS INBOX (MESSAGES)") == ['* STATUS "INBOX" (MESSAGES 0)']


def test_appendlimit_advertised_and_enforced_per_message(registry):
    env = env_with(registry, message_size=5000)
    c = env.client(ALICE)
    assert "APPENDLIMIT=5000" in c.ok("a CAPABILITY")[0].split()
    assert "MULTIAPPEND" in c.ok("b CAPABILITY")[0].split()
    assert c.ok("s STATUS Drafts (MESSAGES APPENDLIMIT)") == ['* STATUS "Drafts" (MESSAGES 0 APPENDLIMIT 5000)']
    big = message(2, body="z" * 6000)
    out = c.send(multiappend("c", "INBOX", ("", message(1)), ("", big)))
    assert out.startswith(b"c NO [TOOBIG]")
    assert c.ok("d STATUS INBOX (MESSAGES)") == ['* STATUS "INBOX" (MESSAGES 0)']


def test_total_of_one_append_is_bounded(registry):
    env = env_with(registry, message_size=5000)
    c = env.client(ALICE)
    each = message(1, body="w" * 4000)
    out = c.send(multiappend("a", "INBOX", ("", each), ("", each), ("", each)))
    assert out.startswith(b"a NO [LIMIT]")
    assert c.send(multiappend("b", "INBOX", ("", each), ("", each))).startswith(b"b OK [APPENDUID ")


def test_synchronizing_literals_get_a_continuation_each(env):
    c = env.client(ALICE)
    one, two = message(1), message(2)
    assert c.send(b"a APPEND INBOX {%d}\r\n" % len(one)) == b"+ Ready for literal data\r\n"
    assert c.send(one + b" (\\Flagged) {%d}\r\n" % len(two)) == b"+ Ready for literal data\r\n"
    assert re.fullmatch(rb"a OK \[APPENDUID \d+ 1:2\] Append completed\r\n", c.send(two + b"\r\n"))
