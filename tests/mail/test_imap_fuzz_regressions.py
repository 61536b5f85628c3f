"""Inputs the atheris fuzzer (tests/fuzz/fuzz_imap.py) found crashing the IMAP server: each is
fed through the protocol and must get the protocol's answer, never ``NO [SERVERBUG]``."""

from __future__ import annotations

import pytest

from tau.mail.imap.testing import IMAPEnv, message

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    e.append(ALICE, message(1))
    return e


@pytest.mark.parametrize("line", [b"\x952 UID MOVE 2 Archive", b"\xc3\xa9 NOOP", b"a\xff CAPABILITY"])
def test_8bit_tag_is_bad_not_an_internal_error(env, line):
    """RFC 3501 §9: a tag is 7-bit ASTRING-CHARs; an 8-bit one used to reach ``tag.decode()``."""
    c = env.client(ALICE, mailbox="INBOX")
    out = c.send(line + b"\r\n")
    assert out == b"* BAD Missing or invalid tag\r\n", out
    assert c.cmd("zz NOOP")[-1] == "zz OK NOOP completed"
