"""Issue 16: rows of calendars, contacts, files and the messenger written before encryption at
rest (``kv = 0``, plaintext) are sealed by the converter while the server runs, read the same
afterwards, and are re-sealed under the new data key after ``tau keys rotate``."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer

from tau.atrest.convert import Converter, pending_total
from tau.calendar import objects
from tau.calendar import store as cals
from tau.contacts import cardstore
from tau.contacts import store as books
from tau.files import listing
from tau.files import store as files
from tau.messenger import conversations, messages
from tests.support.harness import add_user

ALICE = "alice@example.test"
ICS = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:old-uid\r\n"
       "DTSTAMP:20260101T000000Z\r\nDTSTART:20260506T100000Z\r\nDTEND:20260506T110000Z\r\n"
       "SUMMARY:Old secret meeting\r\nEND:VEVENT\r\n"
       "END:VCALENDAR\r\n")
VCARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:old-card\r\nFN:Old Person\r\nEMAIL:old@example.org\r\nEND:VCARD\r\n"
PLAINTEXT = ("old-folder", "Old Cal", "old desc", "old.ics", "old-uid", "Old secret meeting", "Old Book",
             "old.vcf", "old-card", "Old Person", "old person", "old@example.org", "Old Title", "old body", "old.pdf")


def _rows_from_before(txn: Any, uid: int) -> dict[str, int]:
    """Rows as the code before this change wrote them: plaintext, kv = 0."""
    root = files.ensure_root(txn, uid)
    ids: dict[str, int] = {"root": root.id}
    ids["folder"] = int(txn.scalar("INSERT INTO file_nodes (user_id, parent_id, name, kind, size, etag, created_at,"
                                   " modified_at) VALUES (?, ?, 'old-folder', 'folder', 0, '\"e\"', 0, 0) RETURNING id",
                                   (uid, root.id)))
    txn.execute("UPDATE file_usage SET sync_seq = 1 WHERE user_id = ?", (uid,))
    txn.execute("INSERT INTO file_changes (user_id, seq, parent_id, name) VALUES (?, 1, ?, 'old-folder')",
                (uid, root.id))
    ids["cal"] = cal = int(txn.scalar(
        "INSERT INTO cal_calendars (user_id, name, display_name, description, created_at, modified_at, sync_seq)"
        " VALUES (?, 'oldcal', 'Old Cal', 'old desc', 0, 0, 1) RETURNING id", (uid,)))
    obj = int(txn.scalar("INSERT INTO cal_objects (calendar_id, name, uid, component, etag, data, size, created_at,"
                         " modified_at) VALUES (?, 'old.ics', 'old-uid', 'VEVENT', '\"x\"', ?, ?, 0, 0) RETURNING id",
                         (cal, ICS, len(ICS))))
    txn.execute("INSERT INTO cal_instances (object_id, calendar_id, start_utc, end_utc) VALUES (?, ?, ?, ?)",
                (obj, cal, 1778061600, 1778065200))
    txn.execute("INSERT INTO cal_changes (calendar_id, name, seq, deleted) VALUES (?, 'old.ics', 1, 0)", (cal,))
    ids["book"] = book = int(txn.scalar(
        "INSERT INTO ab_books (user_id, name, display_name, created_at, modified_at, sync_seq)"
        " VALUES (?, 'oldbook', 'Old Book', 0, 0, 1) RETURNING id", (uid,)))
    card = int(txn.scalar("INSERT INTO ab_cards (book_id, name, uid, etag, fn, data, size, created_at, modified_at)"
                          " VALUES (?, 'old.vcf', 'old-card', '\"y\"', 'Old Person', ?, ?, 0, 0) RETURNING id",
                          (book, VCARD, len(VCARD))))
    for prop, value in (("FN", "old person"), ("EMAIL", "old@example.org")):
        txn.execute("INSERT INTO ab_index (card_id, book_id, prop, value) VALUES (?, ?, ?, ?)",
                    (card, book, prop, value))
    txn.execute("INSERT INTO ab_changes (book_id, name, seq, deleted) VALUES (?, 'old.vcf', 1, 0)", (book,))
    ids["conv"] = conv = int(txn.scalar(
        "INSERT INTO msg_conversations (kind, encrypted, title, created_by, created_at, key_user)"
        " VALUES ('group', 0, 'Old Title', ?, 0, ?) RETURNING id", (uid, uid)))
    txn.execute("INSERT INTO msg_members (conversation_id, user_id, role, joined_at) VALUES (?, ?, 'admin', 0)",
                (conv, uid))
    txn.execute("INSERT INTO msg_messages (conversation_id, sender_id, sender_device, created_at, body, attachments,"
                " key_user) VALUES (?, ?, 0, 5, 'old body', ?, ?)",
                (conv, uid, json.dumps([{"file_id": "1", "name": "old.pdf"}]), uid))
    return ids


def _reads(txn: Any, uid: int, ids: dict[str, int]) -> dict[str, Any]:
    """What users see of those rows, through the stores."""
    obj = objects.get(txn, ids["cal"], "old.ics", with_data=True)
    card = cardstore.get(txn, ids["book"], "old.vcf", with_data=True)
    cal = cals.by_id(txn, ids["cal"])
    book = books.by_id(txn, ids["book"])
    return {
        "children": [n.name for n in files.children(txn, ids["root"])],
        "child": files.child(txn, ids["root"], "old-folder") is not None,
        "file_changes": [c[1] for c in listing.changes_since(txn, [ids["root"]], 0)],
        "cal": (cal.display_name, cal.description) if cal else None,
        "object": (obj.name, obj.uid, obj.data) if obj else None,
        "by_uid": (objects.by_uid(txn, ids["cal"], "old-uid") or obj).name if obj else None,
        "cal_sync": [o.name for o in (objects.sync_state(txn, ids["cal"], 0) or (0, [], []))[1]],
        "book": book.display_name if book else None,
        "card": (card.name, card.uid, card.fn, card.data) if card else None,
        "match": sorted(cardstore.match(txn, [ids["book"]], "FN", "PERSON", "contains", False)),
        "known": sorted(cardstore.known_emails(txn, [ids["book"]], ["old@example.org", "nobody@example.org"])),
        "card_sync": [c.name for c in (cardstore.sync_state(txn, ids["book"], 0, None) or (0, [], [], False))[1]],
        "title": conversations.get_for_member(txn, ids["conv"], uid)["title"],
        "history": [(m.get("body"), m.get("attachments"))
                    for m in messages.history(txn, uid, ids["conv"], 0, 0, 10, 0)],
    }


def _stored_plaintext(txn: Any) -> list[str]:
    tables = {"file_nodes": "name", "file_changes": "name", "cal_calendars": "display_name || description",
              "cal_objects": "name || uid || data", "cal_changes": "name", "ab_books": "display_name",
              "ab_cards": "name || uid || fn || data", "ab_index": "value", "ab_changes": "name",
              "msg_conversations": "title", "msg_messages": "COALESCE(body, '') || COALESCE(attachments, '')"}
    text = " ".join(str(r[0]) for t, cols in tables.items() for r in txn.query(f"SELECT {cols} FROM {t}"))
    return [p for p in PLAINTEXT if p in text]


def _convert(converter: Converter) -> dict[str, int]:
    result = defer.ensureDeferred(converter.run_once())
    done: dict[str, int] = result.result  # the test database completes every transaction at once
    return done


def test_rows_from_before_are_sealed_in_the_background_and_read_the_same(registry: Any) -> None:
    uid = add_user(registry, ALICE, fast_hash=True).id
    db = registry.db.sync
    ids = db.run("old", _rows_from_before, uid)
    before = db.run("read", _reads, uid, ids)
    assert before["object"] == ("old.ics", "old-uid", ICS) and before["title"] == "Old Title"
    assert before["match"] and before["known"] == ["old@example.org"] and before["history"][0][0] == "old body"
    pending = db.run("pending", pending_total, registry.atrest_tables)
    assert all(pending[t] >= 1 for t in ("file_nodes", "file_changes", "cal_calendars", "cal_objects", "cal_changes",
                                         "ab_books", "ab_cards", "ab_index", "ab_changes", "msg_conversations",
                                         "msg_messages")), pending

    converter = Converter(registry, registry.atrest_tables)  # one node: one lease holder
    done = _convert(converter)
    assert done and not any(db.run("pending", pending_total, registry.atrest_tables).values())
    assert db.run("plain", _stored_plaintext) == []
    assert db.run("read", _reads, uid, ids) == before
    assert _convert(converter) == {}  # idempotent: nothing left to do


def test_rotation_reseals_under_the_new_data_key(registry: Any) -> None:
    uid = add_user(registry, ALICE, fast_hash=True).id
    db = registry.db.sync
    ids = db.run("old", _rows_from_before, uid)
    converter = Converter(registry, registry.atrest_tables)
    _convert(converter)
    before = db.run("read", _reads, uid, ids)
    db.run("rotate", registry.keyring.rotate_txn)
    pending = db.run("pending", pending_total, registry.atrest_tables)
    assert pending["cal_objects"] == 1 and pending["file_nodes"] >= 2 and pending["msg_messages"] == 1
    assert db.run("read", _reads, uid, ids) == before  # readable under the retired key meanwhile
    _convert(converter)
    assert not any(db.run("pending", pending_total, registry.atrest_tables).values())
    assert db.run("read", _reads, uid, ids) == before
    versions = {r[0] for r in db.run("kv", lambda txn: txn.query(
        "SELECT kv FROM cal_objects UNION SELECT kv FROM file_nodes UNION SELECT kv FROM ab_index")) }
    assert versions == {2}
