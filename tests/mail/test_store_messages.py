"""Mail store: deliver/append/fetch, UIDs and MODSEQs, flags, copy/move/expunge, blobs, quota,
counters, events and malformed mail. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tau.blobs import refstore as blobrefs  # the IN-list chunk size (CHUNK) is the ledger's
from tau.mail.mime import from_json, parse_message
from tau.mail.store import (
    TOPIC,
    InvalidFlag,
    MailboxNotFound,
    MailStore,
    QuotaExceeded,
    UnknownUser,
    messages,
)
from tests.support.harness import add_user, make_registry, resolve

ALICE = "alice@example.test"
BOB = "bob@example.test"


def raw_message(subject: str = "Hello", body: str = "Hi there", n: int = 0) -> bytes:
    return (f"From: Bob Sender <bob@remote.test>\r\nTo: Alice <alice@example.test>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 1 Jan 2024 10:00:00 +0100\r\nMessage-ID: <m{n}-{subject}@remote.test>\r\n"
            f"\r\n{body}\r\n").encode()


@pytest.fixture
def store(registry):
    add_user(registry, ALICE)
    add_user(registry, BOB)
    s = MailStore(registry)
    resolve(s.ensure_defaults(ALICE))
    resolve(s.ensure_defaults(BOB))
    return s


@pytest.fixture
def events(registry):
    seen: list[dict] = []
    registry.bus.subscribe(TOPIC, lambda topic, event: seen.append(event))
    return seen


def box(store, name="INBOX", user=ALICE):
    return resolve(store.get_mailbox(user, name))


def check_counts(store, user=ALICE):
    """The cached counters agree with the rows, in every mailbox, and with the quota usage."""
    total = 0
    for info in resolve(store.list_mailboxes(user)):
        metas = resolve(store.fetch(info.id, resolve(store.uids(info.id))))
        assert info.messages == len(metas), info
        assert info.unseen == sum(1 for m in metas if "\\Seen" not in m.flags), info
        assert info.size == sum(m.size for m in metas), info
        assert info.uidnext > max([m.uid for m in metas], default=0)
        assert info.highestmodseq >= max([m.modseq for m in metas], default=0)
        total += info.size
    assert resolve(store.usage(user))[0] == total


# -- round trips ---------------------------------------------------------------------------------

def test_append_fetch_round_trip(store, registry):
    raw = raw_message()
    d = resolve(store.append(ALICE, "inbox", raw, flags=["\\seen", "$Label1"], internal_date=1700000000))
    inbox = box(store)
    assert (d.user, d.mailbox, d.uid, d.uidvalidity) == (ALICE, "INBOX", 1, inbox.uidvalidity)
    [meta] = resolve(store.fetch(inbox.id, [1]))
    parsed = parse_message(raw)
    assert meta.uid == 1 and meta.size == len(raw) and meta.internal_date == 1700000000
    assert meta.flags == ("\\Seen", "$Label1")
    assert (meta.envelope, meta.body, meta.bodystructure) == (parsed.envelope, parsed.body, parsed.bodystructure)
    assert meta.parsed_json == ""
    assert resolve(store.read(meta.blob_key)) == raw
    assert resolve(store.read(meta.blob_key, 6, 9)) == raw[6:9]
    assert registry.blobs.sync.read(meta.blob_key) == raw
    [full] = resolve(store.fetch(inbox.id, [1], with_parsed=True))
    again = from_json(full.parsed_json)
    assert again.parts == parsed.parts and again.subject == "Hello"
    assert inbox.messages == 1 and inbox.unseen == 0 and inbox.size == len(raw)
    check_counts(store)


def test_deliver_round_trip(store):
    raw = raw_message("Delivered")
    [d] = resolve(store.deliver([ALICE], raw, None, len(raw), parse_message(raw)))
    assert d.mailbox == "INBOX" and d.uid == 1
    [meta] = resolve(store.fetch(box(store).id, [1]))
    assert resolve(store.read(meta.blob_key)) == raw and meta.flags == ()
    assert box(store).unseen == 1
    check_counts(store)


def test_deliver_by_blob_key_and_into_folder(store, registry):
    raw = raw_message("Streamed")
    info = resolve(registry.blobs.put(raw))
    [d] = resolve(store.deliver([ALICE], None, info.key, info.size, parse_message(raw), mailbox="Junk",
                                flags=["\\Seen"]))
    assert d.mailbox == "Junk"
    [meta] = resolve(store.fetch(box(store, "Junk").id, [d.uid]))
    assert meta.blob_key == info.key and meta.flags == ("\\Seen",)
    # parsed may be omitted: the store parses the blob
    [d2] = resolve(store.deliver([BOB], None, info.key, info.size, None))
    assert resolve(store.fetch(box(store, user=BOB).id, [d2.uid]))[0].envelope == meta.envelope


def test_deliver_missing_mailbox_falls_back_to_inbox(store):
    raw = raw_message()
    [d] = resolve(store.deliver([ALICE], raw, None, len(raw), None, mailbox="No/Such/Box"))
    assert d.mailbox == "INBOX"
    [d] = resolve(store.deliver([ALICE], raw, None, len(raw), None, mailbox="bad*name"))
    assert d.mailbox == "INBOX"


def test_deliver_creates_inbox_for_new_user(registry):
    add_user(registry, "carol@example.test")
    s = MailStore(registry)
    raw = raw_message()
    [d] = resolve(s.deliver(["Carol@Example.Test"], raw, None, len(raw), None))
    assert (d.user, d.mailbox, d.uid) == ("carol@example.test", "INBOX", 1)
    assert resolve(s.get_mailbox("carol@example.test", "Sent")).special_use == "\\Sent"


def test_append_needs_existing_mailbox(store):
    with pytest.raises(MailboxNotFound):
        resolve(store.append(ALICE, "Nope", raw_message()))
    with pytest.raises(UnknownUser):
        resolve(store.append("nobody@example.test", "INBOX", raw_message()))


def test_append_blob(store, registry):
    raw = raw_message("Big")
    info = resolve(registry.blobs.put(raw))
    d = resolve(store.append_blob(ALICE, "Drafts", info.key, info.size, flags=["\\Draft"]))
    [meta] = resolve(store.fetch(box(store, "Drafts").id, [d.uid]))
    assert meta.blob_key == info.key and meta.flags == ("\\Draft",)


# -- UIDs and MODSEQ -----------------------------------------------------------------------------

def test_uids_increase_and_are_never_reused(store):
    inbox = box(store).id
    uids = [resolve(store.append(ALICE, "INBOX", raw_message(n=i))).uid for i in range(4)]
    assert uids == [1, 2, 3, 4]
    resolve(store.store_flags(inbox, [3, 4], "+", ["\\Deleted"]))
    assert resolve(store.expunge(inbox)) == [3, 4]
    assert resolve(store.uids(inbox)) == [1, 2]
    assert resolve(store.append(ALICE, "INBOX", raw_message(n=9))).uid == 5
    assert box(store).uidnext == 6
    check_counts(store)


def test_modseq_strictly_increases(store):
    inbox = box(store).id
    seen = [box(store).highestmodseq]

    def bump():
        seen.append(box(store).highestmodseq)
        assert seen[-1] > seen[-2]

    resolve(store.append(ALICE, "INBOX", raw_message(n=1)))
    bump()
    resolve(store.append(ALICE, "INBOX", raw_message(n=2)))
    bump()
    resolve(store.store_flags(inbox, [1], "+", ["\\Flagged"]))
    bump()
    resolve(store.store_flags(inbox, [1, 2], "+", ["\\Deleted"]))
    bump()
    resolve(store.expunge(inbox, [2]))
    bump()
    changes = resolve(store.changed_since(inbox, seen[2]))
    assert [(c.uid, c.flags) for c in changes] == [(1, ("\\Flagged", "\\Deleted"))]
    assert changes[0].modseq == seen[4] - 1 or changes[0].modseq <= seen[4]
    assert resolve(store.expunged_since(inbox, seen[3])) == [2]
    # a STORE that changes nothing does not take a MODSEQ
    before = box(store).highestmodseq
    result = resolve(store.store_flags(inbox, [1], "+", ["\\flagged"]))
    assert result.changed == [] and box(store).highestmodseq == before


def test_uid_allocation_is_atomic_under_concurrency(registry):
    """Several connections appending at once (real threads) get distinct, gap-free UIDs."""
    import threading

    from tau.mail.store.context import StoreContext
    from tau.mail.store.fields import prepare
    from tau.storage.database import SyncDatabase

    add_user(registry, ALICE, quota_bytes=10**9)
    s = MailStore(registry)
    resolve(s.ensure_defaults(ALICE))
    raw = raw_message()
    key = registry.blobs.sync.put(raw).key
    fields = prepare(None, raw)
    published: list = []

    class Bus:
        def publish(self, topic, event):
            published.append(event)

    ctx = StoreContext(blobs=registry.blobs.sync, bus=Bus(), default_quota=0, keyring=registry.keyring)
    errors: list = []

    def worker():
        db = SyncDatabase(registry.engine)
        try:
            for _ in range(15):
                db.run("t", messages.append, ctx, ALICE, "INBOX", key, len(raw), fields, (), None, raw)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    inbox = box(s)
    assert resolve(s.uids(inbox.id)) == list(range(1, 61))
    assert inbox.uidnext == 61 and inbox.messages == 60
    modseqs = [m.modseq for m in resolve(s.fetch(inbox.id, range(1, 61)))]
    assert len(set(modseqs)) == 60
    assert resolve(s.usage(ALICE))[0] == 60 * len(raw)
    assert len(published) == 60


# -- flags ---------------------------------------------------------------------------------------

def test_store_flags_modes_and_canonical_case(store):
    inbox = box(store).id
    resolve(store.append(ALICE, "INBOX", raw_message()))
    r = resolve(store.store_flags(inbox, [1], "+", ["\\seen", "\\FLAGGED", "$Work", "$work"]))
    assert r.changed[0].flags == ("\\Flagged", "\\Seen", "$Work")
    assert box(store).unseen == 0
    r = resolve(store.store_flags(inbox, [1], "-", ["\\Seen", "$WORK"]))
    assert r.changed[0].flags == ("\\Flagged",)
    assert box(store).unseen == 1
    r = resolve(store.store_flags(inbox, [1], "=", ["\\answered", "\\draft", "Junk"]))
    assert r.changed[0].flags == ("\\Answered", "\\Draft", "Junk")
    assert resolve(store.fetch(inbox, [1]))[0].flags == ("\\Answered", "\\Draft", "Junk")
    r = resolve(store.store_flags(inbox, [1], "=", []))
    assert r.changed[0].flags == ()
    check_counts(store)


@pytest.mark.parametrize("flag", ["\\Recent", "\\recent", "\\Unknown", "bad flag", "a(b", "x]", "%", "\\", "",
                                  "caf\u00e9", "a\x01"])
def test_invalid_flags_refused(store, flag):
    inbox = box(store).id
    resolve(store.append(ALICE, "INBOX", raw_message()))
    before = box(store)
    with pytest.raises(InvalidFlag):
        resolve(store.store_flags(inbox, [1], "+", [flag]))
    with pytest.raises(InvalidFlag):
        resolve(store.append(ALICE, "INBOX", raw_message(), flags=[flag]))
    assert box(store) == before


def test_unchanged_since(store):
    inbox = box(store).id
    for i in range(3):
        resolve(store.append(ALICE, "INBOX", raw_message(n=i)))
    base = box(store).highestmodseq
    resolve(store.store_flags(inbox, [2], "+", ["$Other"]))
    r = resolve(store.store_flags(inbox, [1, 2, 3], "+", ["\\Flagged"], unchanged_since=base))
    assert sorted(c.uid for c in r.changed) == [1, 3] and r.modified == [2]
    assert "\\Flagged" not in resolve(store.fetch(inbox, [2]))[0].flags
    r = resolve(store.store_flags(inbox, [1], "-", ["\\Flagged"], unchanged_since=0))
    assert r.changed == [] and r.modified == [1]


# -- copy, move, expunge -------------------------------------------------------------------------

def test_copy_shares_blob_and_reports_copyuid(store, registry):
    inbox = box(store).id
    for i in range(3):
        resolve(store.append(ALICE, "INBOX", raw_message(n=i), flags=["\\Seen"] if i == 0 else []))
    resolve(store.append(ALICE, "Archive", raw_message(n=99)))
    result = resolve(store.copy(inbox, [1, 3, 42], ALICE, "Archive"))
    archive = box(store, "Archive")
    assert result.uidvalidity == archive.uidvalidity
    assert result.pairs == [(1, 2), (3, 3)]
    src = {m.uid: m for m in resolve(store.fetch(inbox, [1, 3]))}
    dst = {m.uid: m for m in resolve(store.fetch(archive.id, [2, 3]))}
    assert dst[2].blob_key == src[1].blob_key and dst[3].blob_key == src[3].blob_key
    assert dst[2].flags == ("\\Seen",) and dst[2].internal_date == src[1].internal_date
    assert dst[2].envelope == src[1].envelope and dst[2].modseq == dst[3].modseq
    assert archive.messages == 3 and archive.unseen == 2
    refs = registry.db.sync.run("refs", lambda txn: txn.scalar(
        "SELECT refs FROM mail_blobs WHERE blob_key = ?", (src[1].blob_key,)))
    assert refs == 2
    assert resolve(store.copy(inbox, [77], ALICE, "Archive")).pairs == []
    with pytest.raises(MailboxNotFound):
        resolve(store.copy(inbox, [1], ALICE, "Nope"))
    check_counts(store)


def test_copy_into_same_mailbox(store):
    inbox = box(store).id
    resolve(store.append(ALICE, "INBOX", raw_message()))
    assert resolve(store.copy(inbox, [1], ALICE, "INBOX")).pairs == [(1, 2)]
    check_counts(store)


def test_move(store, events):
    inbox = box(store).id
    for i in range(4):
        resolve(store.append(ALICE, "INBOX", raw_message(n=i)))
    keys = {m.uid: m.blob_key for m in resolve(store.fetch(inbox, [1, 2, 3, 4]))}
    used = resolve(store.usage(ALICE))[0]
    before = box(store).highestmodseq
    events.clear()
    result = resolve(store.move(inbox, [2, 4], ALICE, "Trash"))
    trash = box(store, "Trash")
    assert result.pairs == [(2, 1), (4, 2)] and result.uidvalidity == trash.uidvalidity
    assert resolve(store.uids(inbox)) == [1, 3]
    assert [m.blob_key for m in resolve(store.fetch(trash.id, [1, 2]))] == [keys[2], keys[4]]
    assert resolve(store.expunged_since(inbox, before)) == [2, 4]
    assert resolve(store.usage(ALICE))[0] == used
    kinds = [(e["mailbox"], e["kind"], e["uids"]) for e in events]
    assert ("Trash", "append", [1, 2]) in kinds and ("INBOX", "expunge", [2, 4]) in kinds
    check_counts(store)


def test_expunge_only_deleted_and_uid_subset(store):
    inbox = box(store).id
    for i in range(5):
        resolve(store.append(ALICE, "INBOX", raw_message(n=i)))
    assert resolve(store.expunge(inbox)) == []
    resolve(store.store_flags(inbox, [1, 2, 4], "+", ["\\Deleted"]))
    assert resolve(store.expunge(inbox, [2, 3, 4, 99])) == [2, 4]
    assert resolve(store.uids(inbox)) == [1, 3, 5]
    assert resolve(store.expunge(inbox)) == [1]
    assert resolve(store.uids(inbox)) == [3, 5]
    check_counts(store)


def test_blob_deleted_only_when_last_reference_goes(store, registry):
    raw = raw_message("Shared")
    inbox = box(store).id
    resolve(store.append(ALICE, "INBOX", raw))
    resolve(store.deliver([ALICE, BOB], raw, None, len(raw), None))
    resolve(store.copy(inbox, [1], ALICE, "Archive"))
    key = resolve(store.fetch(inbox, [1]))[0].blob_key
    assert resolve(store.fetch(inbox, [2]))[0].blob_key == key
    exists = registry.blobs.sync.exists
    text_rows = lambda: registry.db.sync.run("t", lambda txn: txn.scalar(  # noqa: E731
        "SELECT COUNT(*) FROM mail_content WHERE blob_key = ?", (key,)))  # one sealed row per user
    resolve(store.store_flags(inbox, [1, 2], "+", ["\\Deleted"]))
    resolve(store.expunge(inbox))
    assert exists(key)
    archive = box(store, "Archive").id
    resolve(store.store_flags(archive, [1], "+", ["\\Deleted"]))
    resolve(store.expunge(archive))
    assert exists(key) and text_rows() == 2
    bob_inbox = box(store, user=BOB).id
    resolve(store.move(bob_inbox, [1], BOB, "Trash"))
    assert exists(key)
    resolve(store.store_flags(box(store, "Trash", BOB).id, [1], "+", ["\\Deleted"]))
    resolve(store.expunge(box(store, "Trash", BOB).id))
    assert exists(key)  # expunged messages stay readable by IMAP views until their purge
    resolve(store.purge_expunged(grace=0))
    assert not exists(key) and text_rows() == 0
    # the same bytes delivered again are stored again
    resolve(store.append(ALICE, "INBOX", raw))
    assert exists(key) and text_rows() == 1


def test_redelivery_restores_a_collected_blob(store, registry, monkeypatch):
    """The race the reference counts guard against: a delivery finds the blob already stored (the
    upload is deduplicated away), then the collector deletes it before the delivery commits. The
    delivery sees refs go up from 0, checks the blob, and writes it again from the raw bytes."""
    from tau.mail.store import BlobMissing

    raw = raw_message("Again")
    inbox = box(store).id
    resolve(store.append(ALICE, "INBOX", raw))
    key = resolve(store.fetch(inbox, [1]))[0].blob_key
    resolve(store.store_flags(inbox, [1], "+", ["\\Deleted"]))
    monkeypatch.setattr(store.ctx, "collect", None)  # purge without the after-commit collection
    resolve(store.expunge(inbox))
    resolve(store.purge_expunged(grace=0))
    registry.blobs.sync.delete(key)  # the collector won the race

    async def deduplicated_put(data):
        return key, len(data)

    monkeypatch.setattr(store, "_put", deduplicated_put)
    resolve(store.append(ALICE, "INBOX", raw))
    assert registry.blobs.sync.read(key) == raw
    # without the bytes at hand the store refuses rather than point at nothing
    resolve(store.store_flags(inbox, [2], "+", ["\\Deleted"]))
    resolve(store.expunge(inbox))
    resolve(store.purge_expunged(grace=0))
    registry.blobs.sync.delete(key)
    before = box(store)
    with pytest.raises(BlobMissing):
        resolve(store.append_blob(ALICE, "INBOX", key, len(raw), parse_message(raw)))
    assert box(store) == before


def test_sweep_and_discard_blobs(store, registry, monkeypatch):
    raw = raw_message("Sweep")
    inbox = box(store).id
    resolve(store.append(ALICE, "INBOX", raw))
    key = resolve(store.fetch(inbox, [1]))[0].blob_key
    resolve(store.store_flags(inbox, [1], "+", ["\\Deleted"]))
    monkeypatch.setattr(store.ctx, "collect", None)  # as if the after-commit collection failed
    resolve(store.expunge(inbox))
    resolve(store.purge_expunged(grace=0))
    monkeypatch.undo()
    assert registry.blobs.sync.exists(key)
    assert resolve(store.sweep_blobs()) == 1
    assert not registry.blobs.sync.exists(key) and resolve(store.sweep_blobs()) == 0
    # discard_blob deletes what nothing references, and only that
    orphan = registry.blobs.sync.put(b"never delivered").key
    resolve(store.append(ALICE, "INBOX", raw))
    used = resolve(store.fetch(inbox, [2]))[0].blob_key
    resolve(store.discard_blob(orphan))
    resolve(store.discard_blob(used))
    assert not registry.blobs.sync.exists(orphan) and registry.blobs.sync.exists(used)
    assert resolve(store.read(used)) == raw


def test_outbound_queue_holds_blob(store, registry):
    raw = raw_message("Outgoing")
    d = resolve(store.append(ALICE, "Sent", raw, flags=["\\Seen"]))
    sent = box(store, "Sent").id
    key = resolve(store.fetch(sent, [d.uid]))[0].blob_key
    qid = resolve(store.enqueue_outbound(ALICE, ALICE, ["x@remote.test", "y@remote.test"], key, len(raw),
                                         "<m0-Outgoing@remote.test>"))
    queued = resolve(store.get_outbound(qid))
    assert queued.rcpt_to == ("x@remote.test", "y@remote.test") and queued.status == "queued"
    assert queued.user == ALICE and queued.blob_key == key and queued.attempts == 0
    resolve(store.store_flags(sent, [d.uid], "+", ["\\Deleted"]))
    resolve(store.expunge(sent))
    resolve(store.purge_expunged(grace=0))
    assert registry.blobs.sync.exists(key)
    resolve(store.finish_outbound(qid, "sent"))
    assert not registry.blobs.sync.exists(key)
    assert resolve(store.get_outbound(qid)).status == "sent"


def test_enqueue_inside_a_callers_transaction(store, registry):
    from tau.mail.store import enqueue

    key = registry.blobs.sync.put(b"Subject: x\r\n\r\nbounce\r\n").key
    qid = registry.db.sync.run("smtp", enqueue, None, "", ["postmaster@remote.test"], key, 22)
    assert resolve(store.get_outbound(qid)).user is None


# -- quota ---------------------------------------------------------------------------------------

def test_quota_exceeded_stores_nothing(registry, events):
    add_user(registry, ALICE, quota_bytes=3000)
    s = MailStore(registry)
    resolve(s.ensure_defaults(ALICE))
    small, big = raw_message(body="x" * 100), raw_message("Big", body="y" * 3000)
    resolve(s.append(ALICE, "INBOX", small))
    before, usage, count = box(s), resolve(s.usage(ALICE)), len(events)
    assert usage == (len(small), 3000)
    big_key = registry.blobs.sync.address(big)
    for attempt in (lambda: s.append(ALICE, "INBOX", big), lambda: s.deliver([ALICE], big, None, len(big), None)):
        with pytest.raises(QuotaExceeded) as err:
            resolve(attempt())
        assert err.value.code == "quota_exceeded" and ALICE in str(err.value)
    assert box(s) == before and resolve(s.usage(ALICE)) == usage and len(events) == count
    assert resolve(s.uids(before.id)) == [1]
    assert not registry.blobs.sync.exists(big_key)  # the orphan blob was collected
    # copies count too
    for _ in range(8):
        resolve(s.append(ALICE, "INBOX", small))
    with pytest.raises(QuotaExceeded):
        resolve(s.copy(before.id, [1, 2, 3], ALICE, "Archive"))
    assert box(s, "Archive").messages == 0
    # but moving mail around never fails for quota
    resolve(s.move(before.id, [1, 2, 3], ALICE, "Trash"))
    check_counts(s)


def test_configured_default_quota(tmp_path, db_url):
    reg = make_registry(tmp_path / "q", db_url, limits={"quota_bytes": "600"})
    try:
        add_user(reg, ALICE)
        add_user(reg, BOB, quota_bytes=0)  # the user's own 0 means unlimited
        s = MailStore(reg)
        raw = raw_message(body="z" * 400)
        assert resolve(s.usage(ALICE)) == (0, 600)
        resolve(s.append(ALICE, "INBOX", raw))
        with pytest.raises(QuotaExceeded):
            resolve(s.append(ALICE, "INBOX", raw))
        for _ in range(3):
            resolve(s.append(BOB, "INBOX", raw))
        assert resolve(s.usage(BOB)) == (3 * len(raw), 0)
    finally:
        reg.db.close()


def test_multi_recipient_delivery_is_all_or_nothing(registry, events):
    add_user(registry, ALICE)
    add_user(registry, BOB, quota_bytes=50)
    add_user(registry, "carol@example.test")
    s = MailStore(registry)
    for u in (ALICE, BOB, "carol@example.test"):
        resolve(s.ensure_defaults(u))
    raw = raw_message()
    with pytest.raises(QuotaExceeded) as err:
        resolve(s.deliver([ALICE, BOB, "carol@example.test"], raw, None, len(raw), None))
    assert BOB in str(err.value)
    with pytest.raises(UnknownUser):
        resolve(s.deliver([ALICE, "ghost@example.test"], raw, None, len(raw), None))
    for u in (ALICE, BOB, "carol@example.test"):
        assert box(s, user=u).messages == 0 and resolve(s.usage(u))[0] == 0
    assert not [e for e in events if e["kind"] == "append"]
    out = resolve(s.deliver([ALICE, "carol@example.test", "ALICE@example.test"], raw, None, len(raw), None))
    assert [(d.user, d.uid) for d in out] == [(ALICE, 1), ("carol@example.test", 1)]
    assert len(resolve(s.fetch(box(s).id, [1, 2]))) == 1
    assert [e["user"] for e in events if e["kind"] == "append"] == [ALICE, "carol@example.test"]


# -- events --------------------------------------------------------------------------------------

def test_events_published_after_commit(store, registry, events):
    inbox = box(store).id
    seen_in_handler: list = []

    def handler(topic, event):
        # a new transaction on the same connection: only possible once the writer has committed
        if event["kind"] == "append":
            seen_in_handler.append(resolve(store.uids(event["mailbox_id"])))

    registry.bus.subscribe(TOPIC, handler)
    d = resolve(store.append(ALICE, "INBOX", raw_message()))
    assert seen_in_handler == [[1]]
    assert events[-1] == {"user": ALICE, "mailbox_id": inbox, "mailbox": "INBOX", "kind": "append",
                          "uids": [d.uid], "modseq": box(store).highestmodseq}
    resolve(store.store_flags(inbox, [1], "+", ["\\Deleted"]))
    assert events[-1]["kind"] == "flags" and events[-1]["uids"] == [1]
    resolve(store.expunge(inbox))
    assert events[-1]["kind"] == "expunge" and events[-1]["uids"] == [1]
    resolve(store.create_mailbox(ALICE, "New"))
    assert events[-1]["kind"] == "mailboxes" and events[-1]["mailbox"] == "New"
    assert events[-1]["action"] == "create"


def test_failed_transaction_publishes_nothing(store, events):
    inbox = box(store).id
    resolve(store.append(ALICE, "INBOX", raw_message()))
    events.clear()
    with pytest.raises(InvalidFlag):
        resolve(store.store_flags(inbox, [1], "+", ["\\Recent"]))
    with pytest.raises(MailboxNotFound):
        resolve(store.move(inbox, [1], ALICE, "Nowhere"))
    with pytest.raises(UnknownUser):
        resolve(store.deliver([ALICE, "ghost@example.test"], raw_message(), None, 10, None))
    assert events == []


# -- fetch at scale, malformed mail --------------------------------------------------------------

def test_fetch_chunks_and_ranges(store, monkeypatch):
    monkeypatch.setattr(blobrefs, "CHUNK", 7)
    monkeypatch.setattr(messages, "RANGES_PER_QUERY", 3)
    inbox = box(store).id
    for i in range(40):
        resolve(store.append(ALICE, "INBOX", raw_message(n=i)))
    statements: list[str] = []
    real = type(store._registry.db.sync).run

    def counting(self, name, fn, *args, **kwargs):
        def wrapped(txn, *a, **k):
            orig = txn.query
            txn.query = lambda sql, params=(): (statements.append(sql), orig(sql, params))[1]
            return fn(txn, *a, **k)
        return real(self, name, wrapped, *args, **kwargs)

    monkeypatch.setattr(type(store._registry.db.sync), "run", counting)
    assert [m.uid for m in resolve(store.fetch(inbox, range(1, 41)))] == list(range(1, 41))
    assert len(statements) == 1
    statements.clear()
    odd = list(range(1, 41, 2))
    assert [m.uid for m in resolve(store.fetch(inbox, odd + [1000]))] == odd
    assert len(statements) == 3  # 21 single UIDs in IN lists of 7
    statements.clear()
    runs = [u for a in range(1, 41, 4) for u in (a, a + 1)]  # 10 runs of 2
    assert [m.uid for m in resolve(store.fetch(inbox, runs))] == runs
    assert len(statements) == 3  # IN lists (runs too short to pay as ranges)
    statements.clear()
    runs = [u for a in range(1, 41, 8) for u in range(a, a + 6)]  # 5 runs of 6
    assert [m.uid for m in resolve(store.fetch(inbox, list(reversed(runs))))] == runs
    assert len(statements) == 2  # 5 ranges, 3 per query


MALFORMED = [
    b"",
    b"no headers at all, just text\n",
    b"Subject: nul \x00 in header\r\n\r\nbody with \x00 NUL\r\n",
    b"From: =?utf-8?q?J=C3=BCrgen?= <j@x.test>\nSubject: \xe4\xf6\xfc latin-1 \xff\n\n8-bit body \xe9\n",
    b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nunterminated",
    b"\r\n\r\n\r\n",
    b":\r\n: :\r\nSubject\r\n\r\n",
    b"Subject: " + b"A" * 100_000 + b"\r\n\r\nlong header\r\n",
    b"Subject: bad surrogate \xed\xa0\x80\r\n\r\n\xed\xa0\x80\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_messages_stored_and_fetchable(store, raw):
    from tau.mail.store import Search

    d = resolve(store.append(ALICE, "INBOX", raw))
    inbox = box(store).id
    [meta] = resolve(store.fetch(inbox, [d.uid], with_parsed=True))
    assert resolve(store.read(meta.blob_key)) == raw and meta.size == len(raw)
    assert meta.envelope.startswith("(") and meta.bodystructure.startswith("(")
    from_json(meta.parsed_json)
    [d2] = resolve(store.deliver([BOB], raw, None, len(raw), None))
    assert d2.uid == 1
    for key in (("text", "nul"), ("body", "8-bit"), ("subject", "latin"), ("header", "subject", "a")):
        resolve(store.search(inbox, Search(key)))
    check_counts(store)
