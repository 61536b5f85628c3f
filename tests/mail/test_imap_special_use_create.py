"""CREATE-SPECIAL-USE (RFC 6154 §3): ``CREATE name (USE (attr))``; refusals are NO [USEATTR] and
create nothing."""

from __future__ import annotations

import pytest

from tests.support.imap import IMAPEnv

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


def listed(c, name: str) -> list[str]:
    return c.ok(f'l LIST "" "{name}" RETURN (SPECIAL-USE)')


def test_capability(env):
    assert "CREATE-SPECIAL-USE" in env.client(ALICE).ok("a CAPABILITY")[0].split()


def test_create_second_archive(env):
    c = env.client(ALICE)
    assert c.cmd("a CREATE Archive/2024 (USE (\\Archive))") == ["a OK Create completed"]
    assert listed(c, "Archive/2024") == ['* LIST (\\Archive \\HasNoChildren) "/" "Archive/2024"']
    assert c.cmd("b DELETE Archive/2024") == ["b OK Delete completed"]  # the first \\Archive stays
    assert c.cmd("c DELETE Archive")[0].startswith("c NO")


def test_use_held_by_another_mailbox(env):
    c = env.client(ALICE)
    assert c.cmd("a CREATE Outbox (USE (\\Sent))") == ["a NO [USEATTR] another mailbox is the \\Sent mailbox"]
    assert listed(c, "Outbox") == []


def test_unsupported_and_several_uses(env):
    c = env.client(ALICE)
    assert c.cmd("a CREATE Everything (USE (\\All))")[0].startswith("a NO [USEATTR]")
    assert c.cmd("b CREATE Odd (USE (\\Bogus))")[0].startswith("b NO [USEATTR]")
    assert c.cmd("c CREATE Two (USE (\\Archive \\Junk))")[0].startswith("c NO [USEATTR]")
    assert all(name not in line for line in listed(c, "*") for name in ('"Everything"', '"Odd"', '"Two"'))


def test_empty_use_and_bad_syntax(env):
    c = env.client(ALICE)
    assert c.cmd("a CREATE Plain (USE ())") == ["a OK Create completed"]
    assert listed(c, "Plain") == ['* LIST (\\HasNoChildren) "/" "Plain"']
    assert c.cmd("b CREATE Other (COLOR (red))")[0].startswith("b BAD")
    assert c.cmd("c CREATE Other (USE \\Archive)")[0].startswith("c BAD")
