"""Address object resources, their search index and change log: transaction functions.

A write replaces the card's index rows and bumps the book's ``sync_seq`` in the same
transaction, so ctag, sync-token, ETag and index never disagree. Text matches (RFC 6352
§10.5.4) on the indexed properties are answered by ``match``.

At rest (issue 16) a card's name and UID are keyed lookup hashes under the book owner's index key
(``UNIQUE`` and lookups keep working), the real ones and FN sealed in ``meta_s``, the vCard in
``data_s``; an index row holds the keyed hash of its value (``equals`` and known addresses are
one indexed query) and the value sealed, which the other text matches open in the query loop
(a user's address books are small). Rows from before (``kv = 0``) are read as they are until the
converter seals them; lookups try both forms meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tau.atrest.keyring import UserKey
from tau.atrest.sealed import SealedTable, key, open_json, seal_json
from tau.contacts.store import ContactsError
from tau.contacts.vcard import Card, etag_of
from tau.storage.database import Txn, placeholders

TOMBSTONES = 5000
_COLS = "id, book_id, name, uid, etag, fn, size, created_at, modified_at, meta_s"
_DATA = ", data, data_s"
NAME, UID = "ab.name", "ab.uid"


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


def owner_key(txn: Txn, book_id: int) -> UserKey:
    """The book owner's keys (cards, index rows and changes are sealed under them)."""
    memo = txn.memo.get(("ab-owner", book_id))
    if memo is None:
        memo = txn.memo[("ab-owner", book_id)] = int(
            txn.scalar("SELECT user_id FROM ab_books WHERE id = ?", (book_id,)) or 0)
    return key(txn, int(memo))


def _ctx(book_id: int, lookup: str, part: str = "") -> str:
    return f"ab_cards{part}|{book_id}|{lookup}"


def open_data(txn: Txn, book_id: int, stored_name: str, data: str, data_s: Any) -> str:
    """A card's vCard text from its row (sealed, or a row still in plaintext)."""
    if data_s is None:
        return data
    return owner_key(txn, book_id).open_text(_ctx(book_id, stored_name, ".data"), data_s)


def _row(txn: Txn, r: Any, data: bool = False) -> CardRow:
    name, uid, fn = r[2], r[3], r[5]
    if r[9] is not None:
        meta = open_json(owner_key(txn, int(r[1])), _ctx(int(r[1]), r[2]), r[9])
        name, uid, fn = meta["n"], meta["u"], meta["f"]
    return CardRow(int(r[0]), int(r[1]), name, uid, r[4], fn, int(r[6]), int(r[7]), int(r[8]),
                   open_data(txn, int(r[1]), r[2], r[10], r[11]) if data else None)


def _one(txn: Txn, rows: list[Any], data: bool) -> CardRow | None:
    if len(rows) > 1:  # a sealed row and a plaintext one (mid-conversion): the sealed one
        rows = [r for r in rows if r[9] is not None]
    return _row(txn, rows[0], data) if rows else None


def get(txn: Txn, book_id: int, name: str, with_data: bool = False) -> CardRow | None:
    extra = _DATA if with_data else ""
    return _one(txn, txn.query(f"SELECT {_COLS}{extra} FROM ab_cards WHERE book_id = ? AND name IN (?, ?)",
                               (book_id, owner_key(txn, book_id).lookup(NAME, name), name)), with_data)


def by_id(txn: Txn, card_id: int) -> CardRow | None:
    r = txn.query_one(f"SELECT {_COLS}{_DATA} FROM ab_cards WHERE id = ?", (card_id,))
    return None if r is None else _row(txn, r, True)


def members(txn: Txn, book_id: int, with_data: bool = False) -> list[CardRow]:
    """Every card in name order (sorted here: the database holds only lookup hashes)."""
    extra = _DATA if with_data else ""
    rows = txn.query(f"SELECT {_COLS}{extra} FROM ab_cards WHERE book_id = ?", (book_id,))
    return sorted((_row(txn, r, with_data) for r in rows), key=lambda c: c.name)


def many(txn: Txn, book_id: int, names: Sequence[str]) -> dict[str, CardRow]:
    """Cards by name with their data (addressbook-multiget), 250 names a query."""
    out: dict[str, CardRow] = {}
    names = list(dict.fromkeys(names))
    k = owner_key(txn, book_id)
    for i in range(0, len(names), 250):
        chunk = names[i:i + 250]
        wanted = [k.lookup(NAME, n) for n in chunk] + chunk
        for r in txn.query(f"SELECT {_COLS}{_DATA} FROM ab_cards WHERE book_id = ? AND name IN"
                           f" ({placeholders(len(wanted))})", (book_id, *wanted)):
            row = _row(txn, r, True)
            if row.name not in out or r[9] is not None:
                out[row.name] = row
    return out


def with_ids(txn: Txn, ids: Sequence[int]) -> list[CardRow]:
    out: list[CardRow] = []
    ids = list(dict.fromkeys(ids))
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        out += [_row(txn, r, True) for r in txn.query(f"SELECT {_COLS}{_DATA} FROM ab_cards WHERE id IN"
                                                      f" ({placeholders(len(chunk))})", chunk)]
    return out


def _bump(txn: Txn, book_id: int, name: str, deleted: bool) -> None:
    txn.execute("UPDATE ab_books SET sync_seq = sync_seq + 1, modified_at = ? WHERE id = ?", (int(txn.now), book_id))
    seq = int(txn.scalar("SELECT sync_seq FROM ab_books WHERE id = ?", (book_id,)))
    k = owner_key(txn, book_id)
    lookup = k.lookup(NAME, name)
    txn.execute("DELETE FROM ab_changes WHERE book_id = ? AND name IN (?, ?)", (book_id, lookup, name))
    txn.execute("INSERT INTO ab_changes (book_id, name, seq, deleted, name_s, kv) VALUES (?, ?, ?, ?, ?, ?)",
                (book_id, lookup, seq, 1 if deleted else 0, k.seal(f"ab_changes|{book_id}|{lookup}", name),
                 k.version))
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
    k = owner_key(txn, book_id)
    name_h, uid_h = k.lookup(NAME, name), k.lookup(UID, card.uid)
    clash_row = txn.query_one(f"SELECT {_COLS} FROM ab_cards WHERE book_id = ? AND uid IN (?, ?)"
                              " AND name NOT IN (?, ?)", (book_id, uid_h, card.uid, name_h, name))
    if clash_row is not None:
        clash = _row(txn, clash_row).name
        raise ContactsError(403, "no-uid-conflict:" + str(clash), f"UID already used by {clash}")
    now, etag, size = int(txn.now), etag_of(text), len(text.encode("utf-8"))
    meta = seal_json(k, _ctx(book_id, name_h), {"n": name, "u": card.uid, "f": card.fn[:1024]})
    data_s = k.seal(_ctx(book_id, name_h, ".data"), text)
    if existing is None:
        r = txn.query_one("INSERT INTO ab_cards (book_id, name, uid, etag, fn, data, size, created_at, modified_at,"
                          " meta_s, data_s, kv) VALUES (?, ?, ?, ?, '', '', ?, ?, ?, ?, ?, ?) RETURNING id",
                          (book_id, name_h, uid_h, etag, size, now, now, meta, data_s, k.version))
        assert r is not None
        card_id, created = int(r[0]), now
    else:
        card_id, created = existing.id, existing.created_at
        txn.execute("UPDATE ab_cards SET name = ?, uid = ?, etag = ?, fn = '', data = '', size = ?, modified_at = ?,"
                    " meta_s = ?, data_s = ?, kv = ? WHERE id = ?",
                    (name_h, uid_h, etag, size, now, meta, data_s, k.version, card_id))
        txn.execute("DELETE FROM ab_index WHERE card_id = ?", (card_id,))
    rows = list(dict.fromkeys(card.index))
    if rows:
        txn.executemany("INSERT INTO ab_index (card_id, book_id, prop, value, value_s, kv) VALUES (?, ?, ?, ?, ?, ?)",
                        [(card_id, book_id, p, *_index_value(k, card_id, p, v)) for p, v in rows])
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
    rows = txn.query(f"SELECT name, seq, deleted, name_s FROM ab_changes WHERE book_id = ? AND seq > ?"
                     f" ORDER BY seq{cap}",
                     (book_id, since))
    truncated = limit is not None and len(rows) > limit
    if truncated:
        rows = rows[:limit]
    seq = int(rows[-1][1]) if truncated and rows else int(book[0])
    k = owner_key(txn, book_id)
    rows = [(r[0] if r[3] is None else k.open_text(f"ab_changes|{book_id}|{r[0]}", r[3]), r[1], r[2]) for r in rows]
    alive = [r[0] for r in rows if not r[2]]
    found = many(txn, book_id, alive) if alive else {}
    changed = [found[n] for n in alive if n in found]
    removed = [r[0] for r in rows if r[2] and since]
    return seq, changed, removed, truncated


def _index_value(k: UserKey, card_id: int, prop: str, value: str) -> tuple[str, bytes, int]:
    lookup = k.lookup(f"ab.index|{prop}", value)
    return lookup, k.seal(f"ab_index|{card_id}|{prop}|{lookup}", value), k.version


MATCHES: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda a, b: b in a, "starts-with": lambda a, b: a.startswith(b),
    "ends-with": lambda a, b: a.endswith(b), "equals": lambda a, b: a == b}


def match(txn: Txn, book_ids: Sequence[int], prop: str, value: str, how: str, negate: bool) -> set[int]:
    """Cards with a ``prop`` value that matches (or, negated, one that does not) — case-folded.
    ``equals`` is one indexed query on the keyed hashes; the others open the values of the books'
    index rows for ``prop`` and compare them here."""
    wanted = value.lower()
    out: set[int] = set()
    for book_id in dict.fromkeys(book_ids):
        k = owner_key(txn, book_id)
        if how == "equals" and not negate:
            out |= {int(r[0]) for r in txn.query("SELECT DISTINCT card_id FROM ab_index WHERE book_id = ? AND prop = ?"
                                                 " AND value IN (?, ?)",
                                                 (book_id, prop, k.lookup(f"ab.index|{prop}", wanted), wanted))}
            continue
        test = MATCHES[how]
        for card_id, stored, sealed in txn.query("SELECT card_id, value, value_s FROM ab_index WHERE book_id = ?"
                                                 " AND prop = ?", (book_id, prop)):
            text = stored if sealed is None else k.open_text(f"ab_index|{card_id}|{prop}|{stored}", sealed)
            if test(text, wanted) != negate:
                out.add(int(card_id))
    return out


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
    return [_row(txn, r, True) for r in txn.query(f"SELECT {_COLS}{_DATA} FROM ab_cards WHERE book_id = ? AND id > ?"
                                                  f" ORDER BY id LIMIT {int(limit)}", (book_id, after))]


def known_emails(txn: Txn, book_ids: Sequence[int], emails: Sequence[str]) -> set[str]:
    if not book_ids or not emails:
        return set()
    found: set[str] = set()
    for book_id in dict.fromkeys(book_ids):
        k = owner_key(txn, book_id)
        by_form = {k.lookup("ab.index|EMAIL", e): e for e in emails} | {e: e for e in emails}
        rows = txn.query(f"SELECT DISTINCT value FROM ab_index WHERE book_id = ? AND prop = 'EMAIL'"
                         f" AND value IN ({placeholders(len(by_form))})", (book_id, *by_form))
        found |= {by_form[r[0]] for r in rows}
    return found


# -- encryption at rest of rows written before it (or under a retired key) -----------------------
def _convert_card(txn: Txn, k: UserKey, row: Any) -> None:
    _owner, card_id, book_id, stored_name, stored_uid, fn, meta_s, data, data_s = row
    if meta_s is None:
        name, uid = stored_name, stored_uid
    else:
        meta = open_json(k, _ctx(book_id, stored_name), meta_s)
        name, uid, fn = meta["n"], meta["u"], meta["f"]
    text = data if data_s is None else k.open_text(_ctx(book_id, stored_name, ".data"), data_s)
    name_h = k.lookup(NAME, name)
    txn.execute("UPDATE ab_cards SET name = ?, uid = ?, fn = '', data = '', meta_s = ?, data_s = ?, kv = ?"
                " WHERE id = ?", (name_h, k.lookup(UID, uid), seal_json(k, _ctx(book_id, name_h),
                                                                        {"n": name, "u": uid, "f": fn}),
                                  k.seal(_ctx(book_id, name_h, ".data"), text), k.version, card_id))


def _convert_index(txn: Txn, k: UserKey, row: Any) -> None:
    _owner, card_id, prop, stored, sealed, kv = row
    value = stored if sealed is None else k.open_text(f"ab_index|{card_id}|{prop}|{stored}", sealed)
    lookup, resealed, version = _index_value(k, card_id, prop, value)
    txn.execute("UPDATE ab_index SET value = ?, value_s = ?, kv = ? WHERE card_id = ? AND prop = ? AND value = ?"
                " AND kv = ?", (lookup, resealed, version, card_id, prop, stored, kv))


def _convert_change(txn: Txn, k: UserKey, row: Any) -> None:
    _owner, book_id, stored, name_s = row
    name = stored if name_s is None else k.open_text(f"ab_changes|{book_id}|{stored}", name_s)
    lookup = k.lookup(NAME, name)
    if stored != lookup and txn.scalar("SELECT 1 FROM ab_changes WHERE book_id = ? AND name = ?", (book_id, lookup)):
        txn.execute("DELETE FROM ab_changes WHERE book_id = ? AND name = ?", (book_id, stored))
        return
    txn.execute("UPDATE ab_changes SET name = ?, name_s = ?, kv = ? WHERE book_id = ? AND name = ?",
                (lookup, k.seal(f"ab_changes|{book_id}|{lookup}", name), k.version, book_id, stored))


def atrest_tables() -> list[SealedTable]:
    join = " JOIN ab_books b ON b.id = t.book_id"
    return [SealedTable("ab_cards", "ab_cards", "b.user_id",
                        "t.id, t.book_id, t.name, t.uid, t.fn, t.meta_s, t.data, t.data_s", _convert_card, join),
            SealedTable("ab_index", "ab_index", "b.user_id", "t.card_id, t.prop, t.value, t.value_s, t.kv",
                        _convert_index, join),
            SealedTable("ab_changes", "ab_changes", "b.user_id", "t.book_id, t.name, t.name_s", _convert_change, join)]
