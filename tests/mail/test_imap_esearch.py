"""ESEARCH result options (RFC 4731), SEARCHRES (RFC 5182: SAVE and ``$``) and ESORT (RFC 5267
RETURN on SORT) through the IMAP protocol, on both engines."""

from __future__ import annotations

import pytest

from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"
T0 = 1_700_000_000


@pytest.fixture
def env(registry):
    """Six messages; UIDs 1..6, subjects "Message n", \\Seen on 2, 3 and 5; sizes grow with n."""
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    for n in range(1, 7):
        e.append(ALICE, message(n, body="x" * (100 * n) + "\r\n"), flags=("\\Seen",) if n in (2, 3, 5) else (),
                 internal_date=T0 - 60 * n)
    return e


def one(c, command: str) -> str:
    lines = c.ok(command)
    assert len(lines) == 1, lines
    return lines[0]


def test_return_min_max_count(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert one(c, "a SEARCH RETURN (MIN MAX COUNT) SEEN") == '* ESEARCH (TAG "a") MIN 2 MAX 5 COUNT 3'


def test_return_all_as_sequence_set(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert one(c, "b SEARCH RETURN (ALL) OR SEEN 1") == '* ESEARCH (TAG "b") ALL 1:3,5'


def test_empty_return_means_all(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert one(c, "c SEARCH RETURN () UNSEEN") == '* ESEARCH (TAG "c") ALL 1,4,6'


def test_no_match_reports_only_count(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert one(c, "d SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT absent") == '* ESEARCH (TAG "d") COUNT 0'


def test_uid_search_return_answers_uids(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("b EXPUNGE")
    assert one(c, "e UID SEARCH RETURN (MIN COUNT) SEEN") == '* ESEARCH (TAG "e") UID MIN 2 COUNT 3'
    assert one(c, "f SEARCH RETURN (MIN COUNT) SEEN") == '* ESEARCH (TAG "f") MIN 1 COUNT 3'


def test_return_with_charset(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert one(c, "g SEARCH RETURN (COUNT) CHARSET UTF-8 SUBJECT message") == '* ESEARCH (TAG "g") COUNT 6'


@pytest.mark.parametrize("args", ["RETURN (FOO) ALL", "RETURN MIN ALL", "RETURN (MIN", "RETURN (MIN) "])
def test_bad_return_options(env, args):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.cmd("x SEARCH " + args)[-1].startswith("x BAD")


def test_save_alone_answers_nothing_then_dollar_fetches(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a SEARCH RETURN (SAVE) SEEN") == []
    lines = c.ok("b FETCH $ (UID)")
    assert lines == ["* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)", "* 5 FETCH (UID 5)"]
    lines = c.ok("c UID FETCH $ (FLAGS)")
    assert [line.split()[1] for line in lines] == ["2", "3", "5"]


def test_dollar_in_search(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a SEARCH RETURN (SAVE) SEEN")
    assert one(c, "b SEARCH $ LARGER 400") == "* SEARCH 3 5"
    assert one(c, "c UID SEARCH UID $ NOT 5") == "* SEARCH 2 3"
    assert one(c, "d SEARCH OR $ 1") == "* SEARCH 1 2 3 5"


def test_dollar_in_store_and_copy(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a UID SEARCH RETURN (SAVE) UID 4:5")
    c.ok("b STORE $ +FLAGS.SILENT (\\Flagged)")
    assert one(c, "c SEARCH FLAGGED") == "* SEARCH 4 5"
    assert c.cmd('d COPY $ "Archive"')[-1].startswith("d OK")


def test_save_with_other_options_saves_all(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert one(c, "a SEARCH RETURN (SAVE COUNT) UNSEEN") == '* ESEARCH (TAG "a") COUNT 3'
    assert one(c, "b SEARCH $") == "* SEARCH 1 4 6"


def test_save_with_min_keeps_only_min(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert one(c, "a SEARCH RETURN (SAVE MIN) UNSEEN") == '* ESEARCH (TAG "a") MIN 1'
    assert one(c, "b SEARCH $") == "* SEARCH 1"
    c.ok("c SEARCH RETURN (MAX SAVE MIN) UNSEEN")
    assert one(c, "d SEARCH $") == "* SEARCH 1 6"


def test_dollar_before_any_save_is_empty(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert one(c, "a SEARCH $") == "* SEARCH"
    assert c.ok("b FETCH $ (UID)") == []


def test_failed_save_empties_the_result(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a SEARCH RETURN (SAVE) SEEN")
    assert c.cmd("b SEARCH RETURN (SAVE) CHARSET KOI8-R SEEN")[-1].startswith("b NO [BADCHARSET")
    assert one(c, "c SEARCH $") == "* SEARCH"


def test_expunged_messages_leave_the_saved_result(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a SEARCH RETURN (SAVE) SEEN")
    c.ok("b STORE 3 +FLAGS.SILENT (\\Deleted)")
    c.ok("c EXPUNGE")
    assert one(c, "d UID SEARCH $") == "* SEARCH 2 5"


def test_select_forgets_the_saved_result(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a SEARCH RETURN (SAVE) SEEN")
    c.select("INBOX")
    assert one(c, "b SEARCH $") == "* SEARCH"


def test_esort_return_options(env):
    """ESORT: ESEARCH answers in sort order; MIN/MAX are the first and last sorted message."""
    c = env.client(ALICE, mailbox="INBOX")
    # arrival goes backwards (message n arrived n minutes before T0)
    line = one(c, "a SORT RETURN (MIN MAX COUNT ALL) (ARRIVAL) UTF-8 ALL")
    assert line == '* ESEARCH (TAG "a") MIN 6 MAX 1 COUNT 6 ALL 6,5,4,3,2,1'
    line = one(c, "b UID SORT RETURN (ALL) (REVERSE SIZE) UTF-8 NOT 2")
    assert line == '* ESEARCH (TAG "b") UID ALL 6,5,4,3,1'
    line = one(c, "c SORT RETURN (ALL) (SIZE) UTF-8 ALL")
    assert line == '* ESEARCH (TAG "c") ALL 1:6'


def test_sort_save_then_dollar(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a SORT RETURN (SAVE) (ARRIVAL) UTF-8 SEEN") == []
    assert one(c, "b SEARCH $") == "* SEARCH 2 3 5"


def test_min_or_max_alone_reports_the_modseq_of_that_message(env):
    """RFC 7162 §3.1.5: with only MIN/MAX asked, MODSEQ belongs to the message(s) returned."""
    c = env.client(ALICE)
    c.ok("e ENABLE CONDSTORE")
    c.ok("f SELECT INBOX")
    modseqs = {}
    for n in (1, 3, 2):  # stored in this order: 2 gets the highest MODSEQ
        line = c.ok(f"s{n} STORE {n} +FLAGS (\\Flagged)")[-1]
        modseqs[n] = int(line.rsplit("MODSEQ (", 1)[1].split(")")[0])
    assert one(c, "a SEARCH RETURN (MIN) 1:3 MODSEQ 1") == f'* ESEARCH (TAG "a") MIN 1 MODSEQ {modseqs[1]}'
    assert one(c, "b SEARCH RETURN (MAX) 1:3 MODSEQ 1") == f'* ESEARCH (TAG "b") MAX 3 MODSEQ {modseqs[3]}'
    assert one(c, "c SEARCH RETURN () 1:3 MODSEQ 1") == f'* ESEARCH (TAG "c") ALL 1:3 MODSEQ {modseqs[2]}'


def test_first_condstore_enabling_command_reports_highestmodseq(env):
    """RFC 7162 §3.1: a FETCH MODSEQ that turns CONDSTORE on says the mailbox's HIGHESTMODSEQ."""
    c = env.client(ALICE, mailbox="INBOX")
    lines = c.ok("a FETCH 1 (MODSEQ)")
    assert any(x.startswith("* OK [HIGHESTMODSEQ ") for x in lines), lines
    assert not any("HIGHESTMODSEQ" in x for x in c.ok("b FETCH 1 (MODSEQ)"))
