"""LIST-EXTENDED (RFC 5258): subscriptions that outlive their mailbox (\\NonExistent), CHILDINFO
with RECURSIVEMATCH, the RECURSIVEMATCH rule, RETURN options, SPECIAL-USE selection, several
patterns; LSUB's \\Noselect parents (RFC 3501 §6.3.9)."""

from __future__ import annotations

import pytest

from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


def _about(lines: list[str], *names: str) -> list[str]:
    """The lines naming one of ``names`` (the default mailboxes are subscribed too)."""
    return [x for x in lines if x.rsplit(" ", 1)[-1].strip('"') in names or any(f'"{n}" (' in x for n in names)]


def test_deleted_subscribed_mailbox_is_listed_nonexistent(env):
    c = env.client(ALICE)
    c.ok("a CREATE Work")
    c.ok("b SUBSCRIBE Work")
    c.ok("c DELETE Work")
    assert c.ok('d LIST (SUBSCRIBED) "" "W*"') == ['* LIST (\\NonExistent \\Subscribed \\HasNoChildren) "/" "Work"']
    assert c.ok('e LIST "" "W*"') == []
    assert c.ok('f LIST "" "W*" RETURN (SUBSCRIBED)') == []
    assert c.ok('g LSUB "" "W*"') == ['* LSUB () "/" "Work"']


def test_unsubscribing_a_deleted_name_forgets_it(env):
    c = env.client(ALICE)
    c.ok("a CREATE Work")
    c.ok("b SUBSCRIBE Work")
    c.ok("c DELETE Work")
    c.ok("d UNSUBSCRIBE Work")
    assert c.ok('e LIST (SUBSCRIBED) "" "W*"') == []
    assert c.ok('f LSUB "" "W*"') == []


def test_recreated_mailbox_is_subscribed_again(env):
    c = env.client(ALICE)
    c.ok("a CREATE Work")
    c.ok("b SUBSCRIBE Work")
    c.ok("c DELETE Work")
    c.ok("d CREATE Work")
    assert c.ok('e LIST (SUBSCRIBED) "" "W*"') == ['* LIST (\\Subscribed \\HasNoChildren) "/" "Work"']


def test_deleting_an_unsubscribed_mailbox_leaves_no_subscription(env):
    c = env.client(ALICE)
    c.ok("a CREATE Work")
    c.ok("b DELETE Work")
    assert c.ok('c LIST (SUBSCRIBED) "" "W*"') == []
    assert c.cmd("d UNSUBSCRIBE Work")[-1] == "d OK Unsubscribe completed"


def test_recursivematch_reports_childinfo_for_unsubscribed_parent(env):
    c = env.client(ALICE)
    c.ok("a CREATE Foo/Bar")
    c.ok("b SUBSCRIBE Foo/Bar")
    c.ok("c CREATE Baz")
    lines = c.ok('d LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert _about(lines, "Foo", "Baz", "Foo/Bar") == ['* LIST (\\HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))']
    assert _about(c.ok('e LIST (SUBSCRIBED) "" "%"'), "Foo", "Baz") == []


def test_recursivematch_on_subscribed_parent(env):
    c = env.client(ALICE)
    c.ok("a CREATE Foo/Bar")
    c.ok("b SUBSCRIBE Foo/Bar")
    c.ok("c SUBSCRIBE Foo")
    lines = c.ok('d LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert _about(lines, "Foo") == ['* LIST (\\Subscribed \\HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))']


def test_recursivematch_without_childinfo_when_the_pattern_reaches_the_child(env):
    c = env.client(ALICE)
    c.ok("a CREATE Foo/Bar")
    c.ok("b SUBSCRIBE Foo/Bar")
    lines = c.ok('c LIST (SUBSCRIBED RECURSIVEMATCH) "" "Foo*"')
    assert lines == ['* LIST (\\Subscribed \\HasNoChildren) "/" "Foo/Bar"']


def test_recursivematch_parent_of_a_deleted_subscription(env):
    c = env.client(ALICE)
    c.ok("a CREATE Gone/Child")
    c.ok("b SUBSCRIBE Gone/Child")
    c.ok("c DELETE Gone/Child")
    c.ok("d DELETE Gone")
    lines = c.ok('e LIST (SUBSCRIBED RECURSIVEMATCH) "" "G%"')
    assert lines == ['* LIST (\\NonExistent \\HasNoChildren) "/" "Gone" ("CHILDINFO" ("SUBSCRIBED"))']


@pytest.mark.parametrize("options", ["(RECURSIVEMATCH)", "(REMOTE RECURSIVEMATCH)", "(SPECIAL-USE RECURSIVEMATCH)"])
def test_recursivematch_without_subscribed_is_bad(env, options):
    c = env.client(ALICE)
    assert c.cmd(f'a LIST {options} "" "*"')[-1].startswith("a BAD")


def test_return_children_subscribed_special_use_status(env):
    env.append(ALICE, message(1), mailbox="Sent")
    c = env.client(ALICE)
    c.ok("a CREATE Sent/Old")
    lines = c.ok('b LIST "" "Sent*" RETURN (CHILDREN SUBSCRIBED SPECIAL-USE STATUS (MESSAGES SIZE))')
    assert lines == [
        '* LIST (\\Sent \\Subscribed \\HasChildren) "/" "Sent"',
        f'* STATUS "Sent" (MESSAGES 1 SIZE {len(message(1))})',
        '* LIST (\\HasNoChildren) "/" "Sent/Old"',
        '* STATUS "Sent/Old" (MESSAGES 0 SIZE 0)',
    ]


def test_status_is_not_returned_for_nonexistent_names(env):
    c = env.client(ALICE)
    c.ok("a CREATE Top/Child")
    c.ok("b DELETE Top")
    lines = c.ok('c LIST "" "Top" RETURN (STATUS (MESSAGES))')
    assert lines == ['* LIST (\\NonExistent \\HasChildren) "/" "Top"']


def test_special_use_selection_lists_only_special_mailboxes(env):
    c = env.client(ALICE)
    c.ok("a CREATE Work")
    lines = c.ok('b LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)')
    assert lines == ['* LIST (\\Archive \\HasNoChildren) "/" "Archive"',
                     '* LIST (\\Drafts \\HasNoChildren) "/" "Drafts"',
                     '* LIST (\\Junk \\HasNoChildren) "/" "Junk"', '* LIST (\\Sent \\HasNoChildren) "/" "Sent"',
                     '* LIST (\\Trash \\HasNoChildren) "/" "Trash"']


def test_several_patterns(env):
    c = env.client(ALICE)
    c.ok("a CREATE Sent/Old")
    c.ok("b CREATE Work")
    assert c.ok('c LIST "" ("INBOX" "Sent*")') == [
        '* LIST (\\HasNoChildren) "/" "INBOX"', '* LIST (\\Sent \\HasChildren) "/" "Sent"',
        '* LIST (\\HasNoChildren) "/" "Sent/Old"']


def test_unknown_return_option_is_bad(env):
    c = env.client(ALICE)
    assert c.cmd('a LIST "" "*" RETURN (BOGUS)')[-1].startswith("a BAD")


def test_lsub_returns_unsubscribed_parent_as_noselect(env):
    c = env.client(ALICE)
    c.ok("a CREATE Top/Sub")
    c.ok("b SUBSCRIBE Top/Sub")
    assert c.ok('c LSUB "" "To%"') == ['* LSUB (\\Noselect) "/" "Top"']
    assert c.ok('d LSUB "" "Top/%"') == ['* LSUB () "/" "Top/Sub"']
    assert c.ok('e LSUB "" "To*"') == ['* LSUB () "/" "Top/Sub"']


def test_lsub_subscribed_parent_is_not_noselect(env):
    c = env.client(ALICE)
    c.ok("a CREATE Top/Sub")
    c.ok("b SUBSCRIBE Top/Sub")
    c.ok("c SUBSCRIBE Top")
    assert c.ok('d LSUB "" "To%"') == ['* LSUB () "/" "Top"']


def test_rename_onto_a_deleted_subscribed_name_takes_the_subscription(env):
    c = env.client(ALICE)
    c.ok("a CREATE Work/Old")
    c.ok("b SUBSCRIBE Work/Old")
    c.ok("c DELETE Work/Old")
    c.ok("d DELETE Work")
    c.ok("e CREATE Misc/Old")
    c.ok("f RENAME Misc Work")  # Misc/Old follows as Work/Old
    assert c.ok('g LIST (SUBSCRIBED) "" "Work*"') == ['* LIST (\\Subscribed \\HasNoChildren) "/" "Work/Old"']


def test_unsubscribe_drops_a_kept_subscription_of_an_existing_name(env):
    c = env.client(ALICE)
    c.ok("a CREATE Top/Sub")
    c.ok("b SUBSCRIBE Top")
    c.ok("c DELETE Top")  # Top/Sub keeps the name alive as a parent
    c.ok("d CREATE Top/Other")
    c.ok("e UNSUBSCRIBE Top")
    assert c.ok('f LIST (SUBSCRIBED) "" "Top"') == []
