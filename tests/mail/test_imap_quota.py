"""QUOTA (RFC 9208): one quota root "" per user with the STORAGE resource, in KiB, the same usage
and limit the store enforces (``[limits] quota_bytes``); SETQUOTA refused; OVERQUOTA on APPEND."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"
QUOTA = 100 * 1024


@pytest.fixture
def env(registry):
    registry.config.limits = replace(registry.config.limits, quota_bytes=QUOTA)
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


def append(c, tag: str, raw: bytes, mailbox: str = "INBOX") -> str:
    return c.send(f"{tag} APPEND {mailbox} {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n").decode()


def kib(n: int) -> int:
    return (n + 1023) // 1024


def test_capabilities(env):
    caps = env.client(ALICE).ok("a CAPABILITY")[0].split()
    assert "QUOTA" in caps and "QUOTA=RES-STORAGE" in caps


def test_getquotaroot_follows_append_and_expunge(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a GETQUOTAROOT INBOX") == ['* QUOTAROOT "INBOX" ""', '* QUOTA "" (STORAGE 0 100)']
    one, two = message(1, body="a" * 5000), message(2, body="b" * 20000)
    assert append(c, "b", one).endswith(" 1] Append completed\r\n")
    assert append(c, "c", two, "Archive").endswith(" 1] Append completed\r\n")
    assert c.ok("d GETQUOTAROOT Archive") == ['* QUOTAROOT "Archive" ""',
                                              f'* QUOTA "" (STORAGE {kib(len(one) + len(two))} 100)']
    c.ok("e STORE 1 +FLAGS (\\Deleted)")
    c.ok("f EXPUNGE")
    assert c.ok('g GETQUOTA ""') == [f'* QUOTA "" (STORAGE {kib(len(two))} 100)']


def test_append_over_quota_is_overquota(env):
    c = env.client(ALICE)
    assert append(c, "a", message(1, body="x" * (QUOTA - 2000))).startswith("a OK")
    assert append(c, "b", message(2, body="x" * 3000)).startswith("b NO [OVERQUOTA]")


def test_setquota_is_refused(env):
    c = env.client(ALICE)
    assert c.cmd('a SETQUOTA "" (STORAGE 512)') == ["a NO [NOPERM] Quotas are set by the administrator"]
    assert c.ok('b GETQUOTA ""') == ['* QUOTA "" (STORAGE 0 100)']


def test_unknown_root_and_mailbox(env):
    c = env.client(ALICE)
    assert c.cmd('a GETQUOTA "user.bob"') == ["a NO [NONEXISTENT] No such quota root"]
    assert c.cmd("b GETQUOTAROOT Nowhere") == ["b NO [NONEXISTENT] Mailbox doesn't exist"]
    assert c.cmd("c GETQUOTAROOT")[-1].startswith("c BAD")


def test_without_a_limit_there_is_no_quota_root(registry):
    registry.config.limits = replace(registry.config.limits, quota_bytes=0)
    env = IMAPEnv(registry)
    env.add_user(ALICE)
    c = env.client(ALICE)
    assert c.ok("a GETQUOTAROOT INBOX") == ['* QUOTAROOT "INBOX"']
    assert c.cmd('b GETQUOTA ""') == ["b NO [NONEXISTENT] No such quota root"]


def test_status_deleted_and_deleted_storage(env):
    c = env.client(ALICE, mailbox="INBOX")
    sizes = [len(message(n, body="d" * 3000 * n)) for n in (1, 2, 3)]
    for n in (1, 2, 3):
        append(c, f"a{n}", message(n, body="d" * 3000 * n))
    assert c.ok("b STATUS INBOX (DELETED DELETED-STORAGE)") == ['* STATUS "INBOX" (DELETED 0 DELETED-STORAGE 0)']
    c.ok("c STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    assert c.ok("d STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)") == \
        [f'* STATUS "INBOX" (MESSAGES 3 DELETED 2 DELETED-STORAGE {kib(sizes[0] + sizes[2])})']
    c.ok("e EXPUNGE")
    assert c.ok("f STATUS INBOX (DELETED DELETED-STORAGE)") == ['* STATUS "INBOX" (DELETED 0 DELETED-STORAGE 0)']
