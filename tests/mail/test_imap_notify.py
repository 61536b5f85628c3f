"""NOTIFY (RFC 5465): a session hears about its user's other mailboxes (STATUS), mailbox names and
subscriptions (LIST) and its selected mailbox (EXISTS/EXPUNGE/FETCH) without polling; refusals
are BAD for syntax and NO [BADEVENT] for events the server does not support. Raw protocol bytes,
on both database engines."""

from __future__ import annotations

import re

import pytest

from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"
MALLORY = "mallory@example.test"
PERSONAL = "n NOTIFY SET (personal (MessageNew MessageExpunge FlagChange))"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    e.add_user(MALLORY)
    return e


def status_lines(data: bytes) -> dict[str, str]:
    return {k.strip('"'): v for k, v in re.findall(r"\* STATUS (\S+) \(([^)]*)\)\r\n", data.decode())}


def test_capability_advertises_notify(env):
    assert " NOTIFY" in env.client(ALICE).ok("c CAPABILITY")[0]


def test_new_mail_in_other_mailboxes_gives_status_without_polling(env):
    a = env.client(ALICE)
    assert a.ok(PERSONAL) == []
    env.append(ALICE, message(1))                       # as SMTP delivery does
    uidvalidity = env.client(ALICE).ok("s STATUS INBOX (UIDVALIDITY)")[0].split()[-1].rstrip(")")
    assert status_lines(a.output()) == {"INBOX": f"MESSAGES 1 UIDNEXT 2 UIDVALIDITY {uidvalidity} UNSEEN 1"}
    b = env.client(ALICE)
    b.send(f"a APPEND Archive {{{len(message(2))}+}}\r\n".encode() + message(2) + b"\r\n")
    assert list(status_lines(a.output())) == ["Archive"]


def test_flag_change_and_expunge_elsewhere_give_status(env):
    env.append(ALICE, message(1))
    a = env.client(ALICE)
    a.ok("e ENABLE CONDSTORE")
    a.ok(PERSONAL)
    b = env.client(ALICE, mailbox="INBOX")
    b.ok("s STORE 1 +FLAGS (\\Seen \\Deleted)")
    news = status_lines(a.output())["INBOX"]
    assert re.fullmatch(r"MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 0 HIGHESTMODSEQ \d+", news)
    b.ok("x EXPUNGE")
    assert status_lines(a.output())["INBOX"].startswith("MESSAGES 0 UIDNEXT 2 ")


def test_status_indicator_reports_every_designated_mailbox_at_once(env):
    env.append(ALICE, message(1))
    a = env.client(ALICE)
    lines = a.ok("n NOTIFY SET STATUS (mailboxes (INBOX Trash) (MessageNew MessageExpunge))")
    assert sorted(line.split()[2].strip('"') for line in lines) == ["INBOX", "Trash"]
    assert lines[0].startswith('* STATUS "INBOX" (MESSAGES 1 UIDNEXT 2 ')


def test_selected_mailbox_new_mail_gives_exists_immediately(env):
    a = env.client(ALICE, mailbox="INBOX")
    a.ok("n NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
         "(personal (MessageNew MessageExpunge))")
    env.append(ALICE, message(1))
    # no STATUS for the selected mailbox; the requested attributes follow EXISTS
    assert a.output() == b"* 1 EXISTS\r\n* 1 RECENT\r\n* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n"
    env.client(ALICE, mailbox="INBOX").ok("s STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert a.output() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))\r\n"


def test_selected_delayed_holds_expunge_until_a_command_allows_it(env):
    env.append(ALICE, message(1))
    env.append(ALICE, message(2))
    a = env.client(ALICE, mailbox="INBOX")
    a.ok("n NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")
    b = env.client(ALICE, mailbox="INBOX")
    b.ok("s STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("x EXPUNGE")
    assert a.output() == b""
    assert a.ok("f FETCH 1 UID") == ["* 1 FETCH (UID 1)"]  # numbering unchanged inside FETCH
    assert a.ok("p NOOP") == ["* 1 EXPUNGE"]


def test_notify_none_stops_notifications(env):
    a = env.client(ALICE)
    a.ok(PERSONAL)
    assert a.cmd("z NOTIFY NONE") == ["z OK NOTIFY completed"]
    env.append(ALICE, message(1))
    assert a.output() == b""


def test_another_users_mail_tells_nothing(env):
    a = env.client(MALLORY)
    a.ok("n NOTIFY SET STATUS (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)) "
         "(mailboxes (INBOX alice@example.test/INBOX) (MessageNew MessageExpunge))")
    a.output()
    env.append(ALICE, message(1))
    alice = env.client(ALICE, mailbox="INBOX")
    alice.ok("s STORE 1 +FLAGS (\\Seen)")
    alice.ok("c CREATE Secret")
    alice.ok("u SUBSCRIBE Secret")
    assert a.output() == b""
    assert a.cmd("p NOOP") == ["p OK NOOP completed"]


def test_mailbox_name_and_subscription_changes_give_list(env):
    a = env.client(ALICE)
    a.ok("n NOTIFY SET (personal (MailboxName SubscriptionChange))")
    b = env.client(ALICE)
    b.ok("c CREATE Projects")
    assert a.output() == b'* LIST () "/" "Projects"\r\n'
    b.ok("u SUBSCRIBE Projects")
    assert a.output() == b'* LIST (\\Subscribed) "/" "Projects"\r\n'
    b.ok("r RENAME Projects Done")
    assert a.output() == b'* LIST (\\Subscribed) "/" "Done" ("OLDNAME" ("Projects"))\r\n'
    b.ok("d DELETE Done")
    assert a.output() == b'* LIST (\\NonExistent) "/" "Done"\r\n'


def test_subtree_filter_only_covers_its_mailboxes(env):
    a = env.client(ALICE)
    a.ok("c CREATE Lists/Tau")
    a.ok("n NOTIFY SET (subtree Lists (MessageNew MessageExpunge))")
    env.append(ALICE, message(1))
    env.append(ALICE, message(2), mailbox="Lists/Tau")
    assert list(status_lines(a.output())) == ["Lists/Tau"]


@pytest.mark.parametrize("event", ["AnnotationChange", "MailboxMetadataChange", "ServerMetadataChange", "Bogus"])
def test_unsupported_event_is_badevent(env, event):
    a = env.client(ALICE)
    extra = " MessageNew MessageExpunge" if event == "AnnotationChange" else ""
    assert a.cmd(f"n NOTIFY SET (personal ({event}{extra}))") == [
        f"n NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] "
        f"Unsupported event {event.upper()}"]


@pytest.mark.parametrize("args", [
    "", "SET", "SET ()", "SET (personal)", "SET (nowhere (MessageNew MessageExpunge))",
    "SET (personal (MessageNew))", "SET (personal (FlagChange))", "SET (personal (MessageNew MessageExpunge)",
    "SET (selected (MailboxName))", "SET (personal (MessageNew (UID) MessageExpunge))",
    "SET (selected NONE) (selected-delayed NONE)", "SET STATUSX (personal NONE)", "NONE extra",
])
def test_syntax_errors_are_bad(env, args):
    assert env.client(ALICE).cmd(f"n NOTIFY {args}".rstrip())[-1].startswith("n BAD")


def test_notify_needs_authentication(env):
    assert env.client().cmd("n NOTIFY NONE")[-1].startswith("n BAD")


def test_notifications_arrive_during_idle_too(env):
    a = env.client(ALICE, mailbox="INBOX")
    a.ok("n NOTIFY SET (selected (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge))")
    assert a.send(b"i IDLE\r\n") == b"+ idling\r\n"
    env.append(ALICE, message(1), mailbox="Junk")
    assert list(status_lines(a.output())) == ["Junk"]
    env.append(ALICE, message(2))
    assert a.output() == b"* 1 EXISTS\r\n* 1 RECENT\r\n"
    assert a.send(b"DONE\r\n") == b"i OK Idle completed\r\n"


def test_notify_set_reports_pending_news_of_the_selected_mailbox(env):
    a = env.client(ALICE, mailbox="INBOX")
    env.append(ALICE, message(1))
    assert a.cmd("n NOTIFY SET (selected (MessageNew MessageExpunge))") == [
        "* 1 EXISTS", "n OK NOTIFY completed"]  # §3: an implicit NOOP


def test_own_mailbox_changes_are_not_echoed(env):
    a = env.client(ALICE)
    a.ok("n NOTIFY SET (personal (MailboxName SubscriptionChange))")
    assert a.cmd("c CREATE Mine") == ["c OK Create completed"]
    assert a.cmd("u SUBSCRIBE Mine") == ["u OK Subscribe completed"]


def test_overflow_turns_notify_off(env, monkeypatch):
    monkeypatch.setattr("tau.mail.imap.notify_push.MAX_PENDING", 0)  # any backlog is too much
    a = env.client(ALICE)
    a.ok(PERSONAL)
    env.append(ALICE, message(1))
    assert a.output() == b"* OK [NOTIFICATIONOVERFLOW] Too many notifications; NOTIFY is off now\r\n"
    env.append(ALICE, message(2))
    assert a.output() == b""  # as after NOTIFY NONE (RFC 5465 section 5.8)
