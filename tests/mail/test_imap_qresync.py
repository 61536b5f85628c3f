"""QRESYNC (RFC 7162 §3.2): ENABLE QRESYNC, SELECT/EXAMINE with the QRESYNC parameter
(VANISHED (EARLIER) plus FETCH of changed flags, known-uids and sequence match data), UID FETCH
(CHANGEDSINCE n VANISHED), VANISHED instead of EXPUNGE, [CLOSED], and expunge tombstones kept
to a limit with a low-water mark (a resync from before it reports every UID no longer present)."""

from __future__ import annotations

import re

import pytest

from tau.mail.store import tombstones
from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    for i in range(1, 11):
        e.append(ALICE, message(i))
    return e


def state(c) -> tuple[int, int]:
    """(UIDVALIDITY, HIGHESTMODSEQ) from a STATUS, as a client keeps them between sessions."""
    line = c.ok("st STATUS INBOX (UIDVALIDITY HIGHESTMODSEQ)")[0]
    m = re.search(r"UIDVALIDITY (\d+) HIGHESTMODSEQ (\d+)", line)
    assert m, line
    return int(m.group(1)), int(m.group(2))


def qresync_client(env, line: str | None = None):
    c = env.client(ALICE)
    assert c.ok("en ENABLE QRESYNC") == ["* ENABLED QRESYNC"]
    return c, (c.ok(line) if line else None)


def expunge(c, uids: str) -> None:
    c.ok(f"x UID STORE {uids} +FLAGS.SILENT (\\Deleted)")
    c.ok(f"y UID EXPUNGE {uids}")


def fetch_lines(lines: list[str]) -> dict[int, str]:
    """uid → the FETCH line reporting it."""
    out = {}
    for line in lines:
        m = re.match(r"\* \d+ FETCH \(UID (\d+) ", line)
        if m:
            out[int(m.group(1))] = line
    return out


def test_capability_and_enable(env):
    c = env.client(ALICE)
    assert " QRESYNC " in c.ok("a CAPABILITY")[0] + " "
    assert c.ok("b ENABLE QRESYNC") == ["* ENABLED QRESYNC"]
    assert c.ok("c ENABLE QRESYNC CONDSTORE") == ["* ENABLED"]  # QRESYNC implies CONDSTORE
    c.select()
    line = c.ok("d STORE 1 +FLAGS (\\Seen)")[0]
    assert re.fullmatch(r"\* 1 FETCH \(FLAGS \(\\Seen\) MODSEQ \(\d+\)\)", line)


def test_qresync_parameter_needs_enable(env):
    c = env.client(ALICE)
    assert c.cmd("a SELECT INBOX (QRESYNC (1 1))")[-1].startswith("a BAD")


def test_resync_after_another_session_expunged_and_flagged(env):
    other = env.client(ALICE, mailbox="INBOX")
    uidvalidity, modseq = state(other)
    other.ok("a UID STORE 2 +FLAGS ($Work)")
    expunge(other, "3:4,9")
    c, lines = qresync_client(env, f"s SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert "* 7 EXISTS" in lines
    assert "* VANISHED (EARLIER) 3:4,9" in lines
    changed = fetch_lines(lines)
    assert list(changed) == [2]
    assert re.fullmatch(r"\* 2 FETCH \(UID 2 FLAGS \(\$Work\) MODSEQ \(\d+\)\)", changed[2])
    assert lines.index("* VANISHED (EARLIER) 3:4,9") < lines.index(changed[2])


def test_examine_resyncs_too(env):
    other = env.client(ALICE, mailbox="INBOX")
    uidvalidity, modseq = state(other)
    expunge(other, "5")
    _, lines = qresync_client(env, f"s EXAMINE INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert "* VANISHED (EARLIER) 5" in lines


def test_nothing_changed_means_nothing_reported(env):
    c, _ = qresync_client(env)
    uidvalidity, modseq = state(c)
    lines = c.ok(f"s SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert not [x for x in lines if "VANISHED" in x or "FETCH" in x]


def test_uidvalidity_mismatch_is_a_plain_select(env):
    other = env.client(ALICE, mailbox="INBOX")
    uidvalidity, modseq = state(other)
    expunge(other, "1")
    other.ok("a STORE 1 +FLAGS (\\Flagged)")
    _, lines = qresync_client(env, f"s SELECT INBOX (QRESYNC ({uidvalidity + 1} {modseq}))")
    assert not [x for x in lines if "VANISHED" in x or "FETCH" in x]
    assert "* 9 EXISTS" in lines


def test_known_uids_limit_what_is_reported(env):
    other = env.client(ALICE, mailbox="INBOX")
    uidvalidity, modseq = state(other)
    other.ok("a UID STORE 2,8 +FLAGS (\\Flagged)")
    expunge(other, "3,7")
    _, lines = qresync_client(env, f"s SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:5))")
    assert "* VANISHED (EARLIER) 3" in lines
    assert list(fetch_lines(lines)) == [2]


def test_uid_fetch_changedsince_vanished(env):
    c, _ = qresync_client(env, "s SELECT INBOX")
    _, modseq = state(c)
    other = env.client(ALICE, mailbox="INBOX")
    other.ok("a UID STORE 6 +FLAGS (\\Answered)")
    expunge(other, "2,10")
    lines = c.ok(f"f UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    # news first (a UID command may report removals), then the answer: vanished UIDs, then changes
    news, answer = lines[:2], lines[2:]
    assert news[0] == "* VANISHED 2,10"
    assert answer[0] == "* VANISHED (EARLIER) 2,10"
    assert answer[1:] == [news[1]]
    assert re.fullmatch(r"\* 5 FETCH \(UID 6 FLAGS \(\\Answered\) MODSEQ \(\d+\)\)", answer[1])


def test_uid_fetch_vanished_reports_earlier_removals_in_the_set(env):
    c, _ = qresync_client(env)
    _, modseq = state(c)
    expunge(env.client(ALICE, mailbox="INBOX"), "2,4,10")
    c.select()  # a fresh view: the removals are history now
    lines = c.ok(f"f UID FETCH 3:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert lines == ["* VANISHED (EARLIER) 4,10"]


def test_vanished_modifier_needs_qresync_uid_and_changedsince(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.cmd("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")[-1].startswith("a BAD")
    c.ok("b ENABLE QRESYNC")
    assert c.cmd("c FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")[-1].startswith("c BAD")
    assert c.cmd("d UID FETCH 1:* (FLAGS) (VANISHED)")[-1].startswith("d BAD")


def test_expunges_are_reported_as_vanished(env):
    c, _ = qresync_client(env, "s SELECT INBOX")
    c.ok("a STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("b EXPUNGE") == ["* VANISHED 2:3", "b OK Expunge completed"]
    other = env.client(ALICE, mailbox="INBOX")
    expunge(other, "7")
    assert c.ok("n NOOP") == ["* VANISHED 7"]
    plain = env.client(ALICE, mailbox="INBOX")
    expunge(other, "8")
    assert plain.ok("n NOOP") == ["* 5 EXPUNGE"]  # without QRESYNC: EXPUNGE as before


def test_closed_when_another_mailbox_is_selected(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a SELECT Archive")[0] == "* OK [CLOSED] Previous mailbox closed"
    assert c.ok("b EXAMINE INBOX")[0] == "* OK [CLOSED] Previous mailbox closed"
    assert "CLOSED" not in " ".join(c.ok("c UNSELECT"))
    assert not [x for x in c.ok("d SELECT INBOX") if "CLOSED" in x]


def test_pruned_tombstones_report_everything_no_longer_present(env, monkeypatch):
    monkeypatch.setattr(tombstones, "KEEP", 2)
    monkeypatch.setattr(tombstones, "SLACK", 0)
    other = env.client(ALICE, mailbox="INBOX")
    uidvalidity, old = state(other)
    expunge(other, "1")
    expunge(other, "3")
    _, middle = state(other)
    expunge(other, "5")
    expunge(other, "6")  # four tombstones, two kept: those of 1 and 3 are pruned
    _, lines = qresync_client(env, f"s SELECT INBOX (QRESYNC ({uidvalidity} {middle}))")
    assert "* VANISHED (EARLIER) 5:6" in lines  # still exact past the low-water mark
    c, lines = qresync_client(env, f"s SELECT INBOX (QRESYNC ({uidvalidity} {old}))")
    assert "* VANISHED (EARLIER) 1,3,5:6" in lines  # every UID not present, as they were pruned
    env.append(ALICE, message(11))
    c2, lines = qresync_client(env, f"s SELECT INBOX (QRESYNC ({uidvalidity} {old} 2:11))")
    assert "* VANISHED (EARLIER) 3,5:6" in lines


def test_sequence_match_data_narrows_a_pruned_answer(env, monkeypatch):
    monkeypatch.setattr(tombstones, "KEEP", 0)
    monkeypatch.setattr(tombstones, "SLACK", 0)
    other = env.client(ALICE, mailbox="INBOX")
    expunge(other, "3")
    uidvalidity, old = state(other)  # the client last saw 1,2,4,...,10 as sequence numbers 1..9
    expunge(other, "8")
    _, lines = qresync_client(env, f"s SELECT INBOX (QRESYNC ({uidvalidity} {old} 1:10))")
    assert "* VANISHED (EARLIER) 3,8" in lines  # tombstones pruned: all that is not present
    # sequence numbers 1 and 3 still mean UIDs 1 and 4: nothing the client knew below 4 went
    _, lines = qresync_client(env, f"s SELECT INBOX (QRESYNC ({uidvalidity} {old} 1:10 (1,3 1,4)))")
    assert "* VANISHED (EARLIER) 8" in lines
    # sequence number 8 was UID 9 and is not any more: only the match below it (UID 4) counts
    _, lines = qresync_client(env, f"s SELECT INBOX (QRESYNC ({uidvalidity} {old} 1:10 (1,3,8 1,4,9)))")
    assert "* VANISHED (EARLIER) 8" in lines
    # a mismatch at the first pair leaves the answer unnarrowed
    _, lines = qresync_client(env, f"s SELECT INBOX (QRESYNC ({uidvalidity} {old} 1:10 (2 3)))")
    assert "* VANISHED (EARLIER) 3,8" in lines


def test_thunderbird_like_sync(env):
    """ENABLE QRESYNC, SELECT with the QRESYNC parameter, keyword tagging from two sessions seen
    live with UID and MODSEQ, then a resync after going offline picks up exactly what changed."""
    tb = env.client(ALICE)
    assert tb.ok("a ENABLE QRESYNC") == ["* ENABLED QRESYNC"]
    uidvalidity, modseq = state(tb)
    lines = tb.ok(f"b SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:10))")
    assert not [x for x in lines if "VANISHED" in x or "FETCH" in x]
    phone = env.client(ALICE, mailbox="INBOX")
    phone.ok("c ENABLE CONDSTORE")
    *announced, tb_line = tb.ok("d UID STORE 3 +FLAGS ($label1)")  # a new keyword: FLAGS first
    assert announced[0].startswith("* FLAGS (") and "$label1" in announced[0]
    assert re.fullmatch(r"\* 3 FETCH \(UID 3 FLAGS \(\$label1\) MODSEQ \(\d+\)\)", tb_line)
    lines = phone.ok("e UID STORE 4 +FLAGS ($Work)")  # news before its own answer
    fetches = [x for x in lines if "FETCH" in x]
    assert len(fetches) == 2 and all(x.startswith("* FLAGS") or x.startswith("* OK [PERMANENTFLAGS")
                                     for x in lines if "FETCH" not in x)
    seen_by_phone, own = fetches
    assert re.fullmatch(r"\* 3 FETCH \(UID 3 FLAGS \(\$label1\) MODSEQ \(\d+\)\)", seen_by_phone)
    assert re.fullmatch(r"\* 4 FETCH \(UID 4 FLAGS \(\$Work\) MODSEQ \(\d+\)\)", own)
    assert [x for x in tb.ok("f NOOP") if "FETCH" in x] == [own]
    assert phone.ok("g NOOP") == []
    _, modseq = state(tb)
    tb.ok("h LOGOUT")
    phone.ok("i UID STORE 3 -FLAGS ($label1)")
    phone.ok("j UID STORE 5 +FLAGS ($label2 \\Seen)")
    expunge(phone, "4")
    env.append(ALICE, message(11))
    tb = env.client(ALICE)
    tb.ok("k ENABLE QRESYNC")
    lines = tb.ok(f"l SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:10))")
    assert "* 10 EXISTS" in lines
    assert "* VANISHED (EARLIER) 4" in lines
    changed = fetch_lines(lines)
    assert list(changed) == [3, 5]
    assert re.fullmatch(r"\* 3 FETCH \(UID 3 FLAGS \(\) MODSEQ \(\d+\)\)", changed[3])
    assert re.fullmatch(r"\* 4 FETCH \(UID 5 FLAGS \(\\Seen \$label2\) MODSEQ \(\d+\)\)", changed[5])
    new = tb.ok("m UID FETCH 11:* (UID FLAGS)")
    assert new == [next(x for x in new if "UID 11" in x)]


def test_renaming_inbox_leaves_tombstones_for_its_messages(env):
    c, _ = qresync_client(env)
    uidvalidity, modseq = state(c)
    c.ok("r RENAME INBOX Old")
    lines = c.ok(f"s SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert "* 0 EXISTS" in lines
    assert "* VANISHED (EARLIER) 1:10" in lines


def test_idle_reports_removals_as_vanished(env):
    c, _ = qresync_client(env, "s SELECT INBOX")
    assert c.send(b"i IDLE\r\n").startswith(b"+ ")
    other = env.client(ALICE, mailbox="INBOX")
    other.ok("d STORE 4:6 +FLAGS.SILENT (\\Deleted)")
    assert c.output().count(b" FETCH (UID ") == 3
    other.ok("e EXPUNGE")
    assert c.output() == b"* VANISHED 4:6\r\n"
    assert c.send(b"DONE\r\n") == b"i OK Idle completed\r\n"


def test_move_and_close_leave_tombstones_too(env):
    other = env.client(ALICE, mailbox="INBOX")
    uidvalidity, modseq = state(other)
    other.ok("m UID MOVE 2 Archive")
    other.ok("d UID STORE 5 +FLAGS.SILENT (\\Deleted)")
    other.ok("c CLOSE")
    _, lines = qresync_client(env, f"s SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert "* VANISHED (EARLIER) 2,5" in lines


@pytest.mark.parametrize("params", [
    "(QRESYNC)", "(QRESYNC ())", "(QRESYNC (1))", "(QRESYNC (0 1))", "(QRESYNC (1 0))", "(QRESYNC 1 2)",
    "(QRESYNC (1 2 1:x))", "(QRESYNC (1 2 1:5 (1)))", "(QRESYNC (1 2 (1 2 3)))", "(QRESYNC (1 2) BOGUS)",
    "(QRESYNC (1 99999999999999999999))",
])
def test_malformed_qresync_parameters_are_bad(env, params):
    c, _ = qresync_client(env)
    assert c.cmd(f"a SELECT INBOX {params}")[-1].startswith("a BAD")
    assert c.ok("b NOOP") == []  # the connection goes on


def test_odd_but_valid_sequence_match_is_ignored(env):
    c, _ = qresync_client(env)
    uidvalidity, modseq = state(c)
    for match in ("(1:* 1:*)", "(1,2 5)", "(1:100000 1:100000)"):
        lines = c.ok(f"s SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:* {match}))")
        assert "* 10 EXISTS" in lines and not [x for x in lines if "VANISHED" in x]
