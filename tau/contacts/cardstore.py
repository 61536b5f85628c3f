"""Address object resources, their search index and change log: transaction functions.

A write replaces the card's index rows and bumps the book's ``sync_seq`` in the same
transaction, so ctag, sync-token, ETag and index never disagree. Text matches (RFC 6352
§10.5.4) on the indexed properties are answered by ``match`` with one indexed query each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tau.contacts.store import ContactsError
from tau.contacts.vcard import Card, etag_of
from tau.storage.database import Txn, placeholders

TOMBSTONES = 5000
_COLS = "id, book_id, name, uid, etag, fn, size, created_at, modified_at"


@dataclass(frozen=True)
class CardRow:
    id: int
    book_id: int
    name: str
    uid: str
    etag: str
    fn: str
    size: int
    created_at: int
    modified_at: int
    data: str | None = None


def _row(r: Any, data: bool = False) -> CardRow:
    return CardRow(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], int(r[6]), int(r[7]), int(r[8]),
                   r[9] if data else None)


def get(txn: Txn, book_id: int, name: str, with_data: bool = False) -> CardRow | None:
    extra = ", data" if with_data else ""
    r = txn.query_one(f"SELECT {_COLS}{extra} FROM ab_cards WHERE book_id = ? AND name = ?", (book_id, name))
    return None if r is None else _row(r, with_data)


def by_id(txn: Txn, card_id: int) -> CardRow | None:
    r = txn.query_one(f"SELECT {_COLS}, data FROM ab_cards WHERE id = ?", (card_id,))
    return None if r is None else _row(r, True)


def members(txn: Txn, book_id: int, with_data: bool = False) -> list[CardRow]:
    extra = ", data" if with_data else ""
    return [_row(r, with_data) for r in txn.query(f"SELECT {_COLS}{extra} FROM ab_cards WHERE book_id = ?"
                                                  " ORDER BY name", (book_id,))]


def many(txn: Txn, book_id: int, names: Sequence[str]) -> dict[str, CardRow]:
    """Cards by name with their data (addressbook-multiget), 500 names a query."""
    out: dict[str, CardRow] = {}
    names = list(dict.fromkeys(names))
    for i in range(0, len(names), 500):
        chunk = names[i:i + 500]
        for r in txn.query(f"SELECT {_COLS}, data FROM ab_cards WHERE book_id = ? AND name IN"
                           f" ({placeholders(len(chunk))})", (book_id, *chunk)):
            out[r[2]] = _row(r, True)
    return out


def with_ids(txn: Txn, ids: Sequence[int]) -> list[CardRow]:
    out: list[CardRow] = []
    ids = list(dict.fromkeys(ids))
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        out += [_row(r, True) for r in txn.query(f"SELECT {_COLS}, data FROM ab_cards WHERE id IN"
                                                 f" ({placeholders(len(chunk))})", chunk)]
    return out


def _bump(txn: Txn, book_id: int, name: str, deleted: bool) -> None:
    txn.execute("UPDATE ab_books SET sync_seq = sync_seq + 1, modified_at = ? WHERE id = ?", (int(txn.now), book_id))
    seq = int(txn.scalar("SELECT sync_seq FROM ab_books WHERE id = ?", (book_id,)))
    txn.execute("DELETE FROM ab_changes WHERE book_id = ? AND name = ?", (book_id, name))
    txn.execute("INSERT INTO ab_changes (book_id, name, seq, deleted) VALUES (?, ?, ?, ?)",
                (book_id, name, seq, 1 if deleted else 0))
    if deleted and seq % 100 == 0:
        cut = txn.scalar("SELECT seq FROM ab_changes WHERE book_id = ? AND deleted = 1 ORDER BY seq DESC"
                         f" LIMIT 1 OFFSET {TOMBSTONES}", (book_id,))
        if cut is not None:
            txn.execute("DELETE FROM ab_changes WHERE book_id = ? AND deleted = 1 AND seq <= ?", (book_id, cut))
            txn.execute("UPDATE ab_books SET pruned_seq = ? WHERE id = ? AND pruned_seq < ?", (cut, book_id, cut))


def put(txn: Txn, book_id: int, name: str, card: Card, text: str, if_etag: str | None = None,
        create_only: bool = False) -> tuple[CardRow, bool]:
    """Create or replace ``name``; returns (row, created). A UID used by another card is 403."""
    existing = get(txn, book_id, name)
    if create_only and existing is not None:
        raise ContactsError(412, "exists", "the resource already exists")
    if if_etag is not None and (existing is None or existing.etag != if_etag):
        raise ContactsError(412, "precondition_failed", "the resource changed")
    clash = txn.scalar("SELECT name FROM ab_cards WHERE book_id = ? AND uid = ? AND name <> ?",
                       (book_id, card.uid, name))
    if clash is not None:
        raise ContactsError(403, "no-uid-conflict:" + str(clash), f"UID already used by {clash}")
    now, etag, size = int(txn.now), etag_of(text), len(text.encode("utf-8"))
    if existing is None:
        r = txn.query_one("INSERT INTO ab_cards (book_id, name, uid, etag, fn, data, size, created_at, modified_at)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                          (book_id, name, card.uid, etag, card.fn[:1024], text, size, now, now))
        assert r is not None
        card_id, created = int(r[0]), now
    else:
        card_id, created = existing.id, existing.created_at
        txn.execute("UPDATE ab_cards SET uid = ?, etag = ?, fn = ?, data = ?, size = ?, modified_at = ? WHERE id = ?",
                    (card.uid, etag, card.fn[:1024], text, size, now, card_id))
        txn.execute("DELETE FROM ab_index WHERE card_id = ?", (card_id,))
    rows = list(dict.fromkeys(card.index))
    if rows:
        txn.executemany("INSERT INTO ab_index (card_id, book_id, prop, value) VALUES (?, ?, ?, ?)",
                        [(card_id, book_id, p, v) for p, v in rows])
    _bump(txn, book_id, name, False)
    return CardRow(card_id, book_id, name, card.uid, etag, card.fn[:1024], size, created, now, text), existing is None


def delete(txn: Txn, book_id: int, name: str, if_etag: str | None = None) -> CardRow | None:
    existing = get(txn, book_id, name)
    if existing is None:
        return None
    if if_etag is not None and existing.etag != if_etag:
        raise ContactsError(412, "precondition_failed", "the resource changed")
    txn.execute("DELETE FROM ab_index WHERE card_id = ?", (existing.id,))
    txn.execute("DELETE FROM ab_cards WHERE id = ?", (existing.id,))
    _bump(txn, book_id, name, True)
    return existing


def sync_state(txn: Txn, book_id: int, since: int, limit: int | None
               ) -> tuple[int, list[CardRow], list[str], bool] | None:
    """(token seq, changed cards, removed names, truncated) after ``since``; None: token too old.

    With ``limit`` at most that many changes, oldest first; the token then names the last one
    returned, so the client continues from there (RFC 6578 §3.6 paging)."""
    book = txn.query_one("SELECT sync_seq, pruned_seq FROM ab_books WHERE id = ?", (book_id,))
    if book is None or (since and since < int(book[1])):
        return None
    cap = f" LIMIT {int(limit) + 1}" if limit is not None else ""
    rows = txn.query(f"SELECT name, seq, deleted FROM ab_changes WHERE book_id = ? AND seq > ? ORDER BY seq{cap}",
                     (book_id, since))
    truncated = limit is not None and len(rows) > limit
    if truncated:
        rows = rows[:limit]
    seq = int(rows[-1][1]) if truncated and rows else int(book[0])
    alive = [r[0] for r in rows if not r[2]]
    found = many(txn, book_id, alive) if alive else {}
    changed = [found[n] for n in alive if n in found]
    removed = [r[0] for r in rows if r[2] and since]
    return seq, changed, removed, truncated


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


PATTERNS = {"contains": "%{}%", "starts-with": "{}%", "ends-with": "%{}", "equals": "{}"}


def match(txn: Txn, book_ids: Sequence[int], prop: str, value: str, how: str, negate: bool) -> set[int]:
    """Cards with a ``prop`` value that matches (or, negated, one that does not) — case-folded."""
    pattern = PATTERNS[how].format(_like(value.lower()))
    op = "NOT LIKE" if negate else "LIKE"
    rows = txn.query(f"SELECT DISTINCT card_id FROM ab_index WHERE book_id IN ({placeholders(len(book_ids))})"
                     f" AND prop = ? AND value {op} ? ESCAPE '\\'", (*book_ids, prop, pattern))
    return {int(r[0]) for r in rows}


def having(txn: Txn, book_id: int, prop: str) -> set[int]:
    return {int(r[0]) for r in txn.query("SELECT DISTINCT card_id FROM ab_index WHERE book_id = ? AND prop = ?",
                                         (book_id, prop))}


def all_ids(txn: Txn, book_id: int) -> set[int]:
    return {int(r[0]) for r in txn.query("SELECT id FROM ab_cards WHERE book_id = ?", (book_id,))}


def page(txn: Txn, book_id: int, after: int, limit: int, ids: set[int] | None = None) -> list[CardRow]:
    """REST listing by id, ``limit`` rows after ``after`` (optionally among ``ids``)."""
    if ids is not None:
        wanted = sorted(i for i in ids if i > after)[:limit]
        return sorted(with_ids(txn, wanted), key=lambda r: r.id)
    return [_row(r, True) for r in txn.query(f"SELECT {_COLS}, data FROM ab_cards WHERE book_id = ? AND id > ?"
                                             f" ORDER BY id LIMIT {int(limit)}", (book_id, after))]


def known_emails(txn: Txn, book_ids: Sequence[int], emails: Sequence[str]) -> set[str]:
    if not book_ids or not emails:
        return set()
    rows = txn.query(f"SELECT DISTINCT value FROM ab_index WHERE book_id IN ({placeholders(len(book_ids))})"
                     f" AND prop = 'EMAIL' AND value IN ({placeholders(len(emails))})", (*book_ids, *emails))
    return {r[0] for r in rows}
