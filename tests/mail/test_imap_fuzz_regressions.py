"""Inputs the atheris fuzzer (tests/fuzz/fuzz_imap.py) found crashing the IMAP server: each is
fed through the protocol and must get the protocol's answer, never ``NO [SERVERBUG]``."""

from __future__ import annotations

import pytest

from tests.support.imap import IMAPEnv, message

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


@pytest.mark.parametrize("when", ["01-Jan-0001 00:00:00 +2359", "31-Dec-9999 23:59:59 -0001"])
def test_append_date_time_outside_four_digit_years_is_bad(env, when):
    """Found while triaging: these zones moved INTERNALDATE to year 0 / 10000, which FETCH then
    wrote as ``"31-Dec-0000 ..."`` / ``"01-Jan-10000 ..."`` (not RFC 3501 ``date-time``)."""
    c = env.client(ALICE)
    out = c.send(f'a1 APPEND INBOX "{when}" {{9+}}\r\nSubject:x\r\n'.encode()).decode()
    assert out.startswith("a1 BAD ") and "out of range" in out, out
    c.select()
    fetched = c.ok("f1 FETCH 1:* (INTERNALDATE)")
    assert len(fetched) == 1 and "-0000 " not in fetched[0] and "-10000 " not in fetched[0], fetched


def test_append_date_time_at_the_edges_of_the_range_is_kept(env):
    c = env.client(ALICE)
    for i, when in enumerate(("01-Jan-0001 00:00:00 +0000", "31-Dec-9999 23:59:59 +0000")):
        out = c.send(f'a{i} APPEND INBOX "{when}" {{9+}}\r\nSubject:x\r\n'.encode()).decode()
        assert out.startswith(f"a{i} OK "), out
    c.select()
    dates = " ".join(c.ok("f1 FETCH 2:3 (INTERNALDATE)"))
    assert '"01-Jan-0001 00:00:00 +0000"' in dates and '"31-Dec-9999 23:59:59 +0000"' in dates, dates
