"""Mail store: default mailboxes, CREATE/DELETE/RENAME/SUBSCRIBE, names, and user isolation.

Every test runs on SQLite and PostgreSQL (the ``registry`` fixture)."""

from __future__ import annotations

import pytest

from tau.mail.store import (
    InvalidMailboxName,
    MailboxExists,
    MailboxInUse,
    MailboxNotFound,
    MailStore,
    Search,
    UnknownUser,
)
from tests.support.harness import add_user, resolve

ALICE = "alice@example.test"
BOB = "bob@example.test"
RAW = (b"From: Bob <bob@remote.test>\r\nTo: alice@example.test\r\nSubject: hi\r\n"
       b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nhello\r\n")


@pytest.fixture
def store(registry):
    add_user(registry, ALICE)
    add_user(registry, BOB)
    s = MailStore(registry)
    resolve(s.ensure_defaults(ALICE))
    resolve(s.ensure_defaults(BOB))
    return s


def names(store, user=ALICE):
    return [m.name for m in resolve(store.list_mailboxes(user))]


def box(store, name, user=ALICE):
    return resolve(store.get_mailbox(user, name))


# -- defaults ------------------------------------------------------------------------------------

def test_defaults_created_with_special_use(store):
    boxes = {m.name: m for m in resolve(store.list_mailboxes(ALICE))}
    assert set(boxes) == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
    assert {n: m.special_use for n, m in boxes.items()} == {
        "INBOX": None, "Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk",
        "Archive": "\\Archive"}
    assert all(m.subscribed and m.messages == 0 and m.uidnext == 1 for m in boxes.values())
    assert names(store)[0] == "INBOX"
    assert len({m.uidvalidity for m in boxes.values()}) == 6


def test_ensure_defaults_is_idempotent(store):
    before = resolve(store.list_mailboxes(ALICE))
    resolve(store.ensure_defaults(ALICE))
    assert resolve(store.list_mailboxes(ALICE)) == before


def test_inbox_created_on_first_look_for_new_user(registry):
    add_user(registry, "carol@example.test")
    s = MailStore(registry)
    info = resolve(s.get_mailbox("carol@example.test", "inbox"))
    assert info is not None and info.name == "INBOX"
    assert "Sent" in names(s, "carol@example.test")


def test_unknown_user(store):
    assert resolve(store.get_mailbox("nobody@example.test", "INBOX")) is None
    assert resolve(store.list_mailboxes("nobody@example.test")) == []
    with pytest.raises(UnknownUser):
        resolve(store.create_mailbox("nobody@example.test", "x"))


# -- create --------------------------------------------------------------------------------------

def test_create_with_parents_and_children_flag(store):
    info = resolve(store.create_mailbox(ALICE, "Projects/2024/Q1"))
    assert info.name == "Projects/2024/Q1" and not info.has_children and not info.subscribed
    assert {"Projects", "Projects/2024", "Projects/2024/Q1"} <= set(names(store))
    assert box(store, "Projects").has_children
    listed = {m.name: m.has_children for m in resolve(store.list_mailboxes(ALICE))}
    assert listed["Projects"] and listed["Projects/2024"] and not listed["Projects/2024/Q1"]
    with pytest.raises(MailboxExists):
        resolve(store.create_mailbox(ALICE, "Projects/2024"))


def test_create_trailing_delimiter_and_inbox_case(store):
    assert resolve(store.create_mailbox(ALICE, "Lists/")).name == "Lists"
    assert box(store, "Lists/") is None  # only CREATE drops the trailing delimiter
    with pytest.raises(MailboxExists):
        resolve(store.create_mailbox(ALICE, "inbox"))
    assert resolve(store.create_mailbox(ALICE, "inbox/Sub")).name == "INBOX/Sub"
    assert box(store, "INBOX/sub") is None  # only INBOX itself is case-insensitive
    assert box(store, "Inbox/Sub").name == "INBOX/Sub"
    assert box(store, "iNbOx").name == "INBOX"


@pytest.mark.parametrize("name", [
    "", "/", "/a", "a//", "a//b", "a/*", "%", "a%b", "a*", "a\x00b", "a\r\nb", "a\x7fb", "x" * 201,
    "../alice", "a/../b", ".", "a/./b", " a", "a /b", "a\u202eb",
])
def test_invalid_names_refused(store, name):
    with pytest.raises(InvalidMailboxName):
        resolve(store.create_mailbox(ALICE, name))
    assert box(store, name) is None


def test_unicode_names(store):
    info = resolve(store.create_mailbox(ALICE, "Café/日本"))
    assert info.name == "Café/日本"
    # NFD spelling of the same name is the same mailbox
    assert box(store, "Cafe\u0301/日本").id == info.id
    assert resolve(store.create_mailbox(ALICE, "x" * 200)).name == "x" * 200


# -- delete --------------------------------------------------------------------------------------

def test_delete_expunges_messages_and_releases_quota(store, registry):
    resolve(store.create_mailbox(ALICE, "Old"))
    d = resolve(store.append(ALICE, "Old", RAW))
    meta = resolve(store.fetch(box(store, "Old").id, [d.uid]))[0]
    assert resolve(store.usage(ALICE))[0] == len(RAW)
    resolve(store.delete_mailbox(ALICE, "Old"))
    assert "Old" not in names(store)
    assert resolve(store.usage(ALICE))[0] == 0
    assert not registry.blobs.sync.exists(meta.blob_key)
    with pytest.raises(MailboxNotFound):
        resolve(store.delete_mailbox(ALICE, "Old"))


def test_delete_refuses_inbox_and_special_use(store):
    with pytest.raises(MailboxInUse):
        resolve(store.delete_mailbox(ALICE, "inbox"))
    with pytest.raises(MailboxInUse):
        resolve(store.delete_mailbox(ALICE, "Trash"))


def test_delete_keeps_children(store):
    resolve(store.create_mailbox(ALICE, "A/B"))
    resolve(store.delete_mailbox(ALICE, "A"))
    assert "A/B" in names(store) and "A" not in names(store)


def test_recreated_mailbox_gets_new_uidvalidity(store):
    first = resolve(store.create_mailbox(ALICE, "Tmp"))
    resolve(store.append(ALICE, "Tmp", RAW))
    resolve(store.delete_mailbox(ALICE, "Tmp"))
    second = resolve(store.create_mailbox(ALICE, "Tmp"))
    assert second.uidvalidity > first.uidvalidity
    assert second.uidnext == 1 and second.messages == 0


# -- rename --------------------------------------------------------------------------------------

def test_rename_with_children(store):
    resolve(store.create_mailbox(ALICE, "Work/Clients/Acme"))
    resolve(store.create_mailbox(ALICE, "Workshop"))
    old = box(store, "Work")
    resolve(store.append(ALICE, "Work/Clients", RAW))
    resolve(store.rename_mailbox(ALICE, "Work", "Jobs/Past"))
    now = set(names(store))
    assert {"Jobs", "Jobs/Past", "Jobs/Past/Clients", "Jobs/Past/Clients/Acme", "Workshop"} <= now
    assert not any(n == "Work" or n.startswith("Work/") for n in now)
    renamed = box(store, "Jobs/Past")
    assert renamed.id == old.id and renamed.uidvalidity == old.uidvalidity
    assert box(store, "Jobs/Past/Clients").messages == 1


def test_rename_errors(store):
    resolve(store.create_mailbox(ALICE, "A/B"))
    resolve(store.create_mailbox(ALICE, "C"))
    with pytest.raises(MailboxExists):
        resolve(store.rename_mailbox(ALICE, "A", "C"))
    with pytest.raises(MailboxExists):
        resolve(store.rename_mailbox(ALICE, "C", "inbox"))
    with pytest.raises(MailboxNotFound):
        resolve(store.rename_mailbox(ALICE, "Nope", "D"))
    with pytest.raises(InvalidMailboxName):
        resolve(store.rename_mailbox(ALICE, "A", "A/B/C"))
    with pytest.raises(InvalidMailboxName):
        resolve(store.rename_mailbox(ALICE, "C", "C*"))
    assert {"A", "A/B", "C"} <= set(names(store))


def test_rename_inbox_moves_messages(store):
    resolve(store.create_mailbox(ALICE, "INBOX/Child"))
    for _ in range(3):
        resolve(store.append(ALICE, "INBOX", RAW))
    inbox = box(store, "INBOX")
    resolve(store.rename_mailbox(ALICE, "inbox", "Old Mail"))
    after = box(store, "INBOX")
    moved = box(store, "Old Mail")
    assert after.id == inbox.id and after.messages == 0 and after.size == 0 and after.unseen == 0
    assert after.uidnext == inbox.uidnext and after.uidvalidity == inbox.uidvalidity
    assert after.highestmodseq > inbox.highestmodseq
    assert moved.messages == 3 and moved.uidvalidity != inbox.uidvalidity
    assert resolve(store.uids(moved.id)) == [1, 2, 3]
    assert resolve(store.expunged_since(inbox.id, inbox.highestmodseq)) == [1, 2, 3]
    assert "INBOX/Child" in names(store)
    # new INBOX mail never reuses the moved UIDs
    assert resolve(store.append(ALICE, "INBOX", RAW)).uid == 4


# -- subscribe -----------------------------------------------------------------------------------

def test_subscribe(store):
    resolve(store.create_mailbox(ALICE, "News"))
    assert not box(store, "News").subscribed
    resolve(store.subscribe(ALICE, "News", True))
    assert box(store, "News").subscribed
    resolve(store.subscribe(ALICE, "News", False))
    assert not box(store, "News").subscribed
    with pytest.raises(MailboxNotFound):
        resolve(store.subscribe(ALICE, "Nope", True))


# -- isolation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("trick", [
    "../alice@example.test/INBOX", "alice@example.test/INBOX", "alice/INBOX", "../alice/INBOX",
    "/alice@example.test/INBOX", "~alice/INBOX", "#users/alice/INBOX", "Secret", "SECRET", "secret",
])
def test_other_user_cannot_reach_mailboxes_by_name(store, trick):
    secret = resolve(store.create_mailbox(ALICE, "Secret"))
    resolve(store.append(ALICE, "Secret", RAW))
    found = box(store, trick, user=BOB)
    assert found is None or found.id != secret.id
    assert all(m.id != secret.id for m in resolve(store.list_mailboxes(BOB)))
    for action in (lambda: store.delete_mailbox(BOB, trick), lambda: store.rename_mailbox(BOB, trick, "Mine"),
                   lambda: store.subscribe(BOB, trick, True), lambda: store.append(BOB, trick, RAW)):
        try:
            resolve(action())
        except (MailboxNotFound, InvalidMailboxName):
            pass
    assert box(store, "Secret").messages == 1 and box(store, "Secret").id == secret.id


def test_bob_inbox_is_his_own(store):
    a, b = box(store, "INBOX"), box(store, "INBOX", user=BOB)
    assert a.id != b.id
    resolve(store.append(ALICE, "INBOX", RAW))
    assert box(store, "inbox", user=BOB).messages == 0


def test_mailbox_id_ownership_checks(store):
    secret = resolve(store.create_mailbox(ALICE, "Secret"))
    d = resolve(store.append(ALICE, "Secret", RAW))
    assert resolve(store.owner(secret.id)) == ALICE
    assert resolve(store.owner(999999)) is None
    assert resolve(store.get_mailbox_by_id(BOB, secret.id)) is None
    assert resolve(store.get_mailbox_by_id(ALICE, secret.id)).name == "Secret"
    calls = [
        lambda: store.uids(secret.id, user=BOB),
        lambda: store.fetch(secret.id, [d.uid], user=BOB),
        lambda: store.changed_since(secret.id, 0, user=BOB),
        lambda: store.store_flags(secret.id, [d.uid], "+", ["\\Deleted"], user=BOB),
        lambda: store.expunge(secret.id, user=BOB),
        lambda: store.search(secret.id, Search(("all",)), user=BOB),
        lambda: store.copy(secret.id, [d.uid], BOB, "INBOX", user=BOB),
        lambda: store.move(secret.id, [d.uid], BOB, "INBOX", user=BOB),
        # even without user=, a copy/move may not cross owners
        lambda: store.copy(secret.id, [d.uid], BOB, "INBOX"),
        lambda: store.move(secret.id, [d.uid], BOB, "INBOX"),
    ]
    for call in calls:
        with pytest.raises(MailboxNotFound):
            resolve(call())
    assert resolve(store.uids(secret.id, user=ALICE)) == [d.uid]
    assert resolve(store.fetch(secret.id, [d.uid], user=ALICE))[0].flags == ()
    assert box(store, "INBOX", user=BOB).messages == 0


def test_renamed_special_use_box_is_kept_and_used(store):
    resolve(store.rename_mailbox(ALICE, "Sent", "Sent Items"))
    resolve(store.ensure_defaults(ALICE))
    assert "Sent" not in names(store)
    assert box(store, "Sent Items").special_use == "\\Sent"
    [d] = resolve(store.deliver([ALICE], RAW, None, len(RAW), None, mailbox="Sent", flags=["\\Seen"]))
    assert d.mailbox == "Sent Items" and box(store, "Sent Items").messages == 1
