"""Address object resources, their search index and change log: transaction functions.

A write replaces the card's index rows and bumps the book's ``sync_seq`` in the same
transaction, so ctag, sync-token, ETag and index never disagree. Text matches (RFC 6352
§10.5.4) on the indexed properties are answered by ``match``.

At rest (issue 16) a card's name and UID are keyed lookup hashes under the book owner's index key
(``UNIQUE`` and lookups keep working), the real ones and FN sealed in ``meta_s``, the vCard in
``data_s``; an index row holds the keyed hash of its value (``equals`` and known addresses are
one indexed query) and the value sealed. The other text matches find candidates in ``ab_tokens``
(keyed hashes of every three-character piece of each value, framed by a start and an end mark)
and open only the candidates' values to verify: any substring of three or more characters (two
for starts-with and ends-with) narrows the search; shorter needles, negated matches and UID
substrings open every value of the property, as before. Rows from before (``kv = 0``) are read as they are until the
converter seals them; lookups try both forms meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tau.atrest.keyring import Keyring, UserKey
from tau.atrest.sealed import SealedTable, key, open_json, seal_json
from tau.contacts.store import ContactsError
from tau.contacts.vcard import Card, etag_of
from tau.dav.member_store import MemberTable
from tau.storage.database import Txn, placeholders

TOMBSTONES = 5000
_COLS = "id, book_id, name, uid, etag, fn, size, created_at, modified_at, meta_s"
_DATA = ", data, data_s"
NAME, UID = "ab.name", "ab.uid"
MEMBERS = MemberTable("ab_cards", "ab_books", "book_id", "ab_changes", NAME, TOMBSTONES)


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


owner_key = MEMBERS.owner_key
_ctx = MEMBERS.context
open_data = MEMBERS.open_data


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
    for r in MEMBERS.rows_named(txn, book_id, names, _COLS + _DATA):
        row = _row(txn, r, True)
        if row.name not in out or r[9] is not None:
            out[row.name] = row
    return out


def with_ids(txn: Txn, ids: Sequence[int]) -> list[CardRow]:
    return [_row(txn, r, True) for r in MEMBERS.rows_with_ids(txn, ids, _COLS + _DATA)]


_bump = MEMBERS.bump


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
                          " meta_s, data_s, kv, tokens) VALUES (?, ?, ?, ?, '', '', ?, ?, ?, ?, ?, ?, 1) RETURNING id",
                          (book_id, name_h, uid_h, etag, size, now, now, meta, data_s, k.version))
        assert r is not None
        card_id, created = int(r[0]), now
    else:
        card_id, created = existing.id, existing.created_at
        txn.execute("UPDATE ab_cards SET name = ?, uid = ?, etag = ?, fn = '', data = '', size = ?, modified_at = ?,"
                    " meta_s = ?, data_s = ?, kv = ?, tokens = 1 WHERE id = ?",
                    (name_h, uid_h, etag, size, now, meta, data_s, k.version, card_id))
        txn.execute("DELETE FROM ab_index WHERE card_id = ?", (card_id,))
        txn.execute("DELETE FROM ab_tokens WHERE card_id = ?", (card_id,))
    rows = list(dict.fromkeys(card.index))
    if rows:
        txn.executemany("INSERT INTO ab_index (card_id, book_id, prop, value, value_s, kv) VALUES (?, ?, ?, ?, ?, ?)",
                        [(card_id, book_id, p, *_index_value(k, card_id, p, v)) for p, v in rows])
        _add_tokens(txn, k, book_id, card_id, rows)
    _bump(txn, book_id, name, False)
    return CardRow(card_id, book_id, name, card.uid, etag, card.fn[:1024], size, created, now, text), existing is None


def delete(txn: Txn, book_id: int, name: str, if_etag: str | None = None) -> CardRow | None:
    existing = get(txn, book_id, name)
    if existing is None:
        return None
    if if_etag is not None and existing.etag != if_etag:
        raise ContactsError(412, "precondition_failed", "the resource changed")
    txn.execute("DELETE FROM ab_index WHERE card_id = ?", (existing.id,))
    txn.execute("DELETE FROM ab_tokens WHERE card_id = ?", (existing.id,))
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
    rows = MEMBERS.changed_since(txn, book_id, since, None if limit is None else limit + 1)
    truncated = limit is not None and len(rows) > limit
    if truncated:
        rows = rows[:limit]
    seq = int(rows[-1][1]) if truncated and rows else int(book[0])
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

# -- the keyed token index (ab_tokens) ------------------------------------------------------------
TOKENS = "ab.token"
START, END = "\x02", "\x03"   # frame marks: a value's first and last pieces say where it starts and ends
GRAM = 3
#: a needle's pieces used to find candidates at most (more would only narrow what decrypting verifies)
MAX_NEEDLE_PIECES = 8
#: more candidates than this: one pass over the property's rows (still opening the candidates only)
MAX_ID_LIST = 1000
_TOKEN_ROWS = 300
#: properties whose values get tokens: a UID is searched by ``equals`` (its keyed hash), so a UID
#: substring search opens every UID instead of adding a quarter of a card's tokens to each write
TOKENISED = frozenset({"FN", "EMAIL", "TEL", "NICKNAME"})


def _pieces(text: str) -> set[str]:
    return {text[i:i + GRAM] for i in range(len(text) - GRAM + 1)}


def value_terms(prop: str, value: str) -> set[str]:
    """The index terms of one (case-folded) index value: every piece of the framed value."""
    return {f"{prop}|{p}" for p in _pieces(START + value + END)}


def needle_terms(prop: str, needle: str, how: str) -> list[str] | None:
    """Terms every value matching ``needle`` the ``how`` way has (each piece of the framed needle
    is a piece of such a framed value); None when the needle has no piece (too short to narrow)."""
    framed = {"contains": needle, "starts-with": START + needle, "ends-with": needle + END,
              "equals": START + needle + END}[how]
    pieces = sorted(_pieces(framed))
    if not pieces or prop not in TOKENISED:
        return None
    if len(pieces) > MAX_NEEDLE_PIECES:  # a subset still finds every match
        step = len(pieces) / MAX_NEEDLE_PIECES
        pieces = [pieces[int(i * step)] for i in range(MAX_NEEDLE_PIECES)]
    return [f"{prop}|{p}" for p in pieces]


def _add_tokens(txn: Txn, k: UserKey, book_id: int, card_id: int, values: Sequence[tuple[str, str]]) -> None:
    terms: set[str] = set()
    for prop, value in values:
        if prop in TOKENISED:
            terms |= value_terms(prop, value)
    tokens = sorted(set(k.tokens(TOKENS, terms)))
    for i in range(0, len(tokens), _TOKEN_ROWS):
        part = tokens[i:i + _TOKEN_ROWS]
        txn.execute("INSERT INTO ab_tokens (book_id, token, card_id) VALUES " + ", ".join(["(?, ?, ?)"] * len(part))
                    + " ON CONFLICT DO NOTHING", [v for t in part for v in (book_id, t, card_id)])


def _candidates(txn: Txn, k: UserKey, book_id: int, terms: list[str]) -> set[int]:
    """Cards of the book holding every term, and those written before the token index."""
    tokens = list(dict.fromkeys(k.tokens(TOKENS, terms)))
    found = {int(r[0]) for r in txn.query(f"SELECT card_id FROM ab_tokens WHERE book_id = ? AND token IN"
                                          f" ({placeholders(len(tokens))}) GROUP BY card_id HAVING COUNT(*) = ?",
                                          (book_id, *tokens, len(tokens)))}
    return found | {int(r[0]) for r in txn.query("SELECT id FROM ab_cards WHERE book_id = ? AND tokens = 0",
                                                 (book_id,))}


def _values(txn: Txn, book_id: int, prop: str, ids: set[int] | None) -> list[tuple[Any, ...]]:
    """(card id, stored value, sealed value) of the book's ``prop`` rows (of the cards ``ids`` only)."""
    select = "SELECT card_id, value, value_s FROM ab_index WHERE book_id = ? AND prop = ?"
    if ids is None or len(ids) > MAX_ID_LIST:
        every = txn.query(select, (book_id, prop))
        return every if ids is None else [r for r in every if int(r[0]) in ids]
    rows: list[tuple[Any, ...]] = []
    ordered = sorted(ids)
    # "+book_id": not an index term, so the planner starts from the ids (SQLite without statistics
    # would rather walk every value of the property in the book and test each card id)
    by_id = "SELECT card_id, value, value_s FROM ab_index WHERE +book_id = ? AND prop = ? AND card_id IN"
    for i in range(0, len(ordered), 500):
        part = ordered[i:i + 500]
        rows += txn.query(f"{by_id} ({placeholders(len(part))})", (book_id, prop, *part))
    return rows


def match(txn: Txn, book_ids: Sequence[int], prop: str, value: str, how: str, negate: bool) -> set[int]:
    """Cards with a ``prop`` value that matches (or, negated, one that does not) — case-folded.
    ``equals`` is one indexed query on the keyed hashes; the others take candidates from the token
    index (every value of the property for a needle too short for it, or a negated match), open
    their values and compare them here."""
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
        terms = None if negate else needle_terms(prop, wanted, how)
        ids = None if terms is None else _candidates(txn, k, book_id, terms)
        if ids is not None and not ids:
            continue
        for card_id, stored, sealed in _values(txn, book_id, prop, ids):
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


class TokenBackfill:
    """The converter's job for cards written before the token index (``tokens = 0``): their index
    values (sealed or not) are opened and their tokens added. Not sealing, but the same background
    pass that reaches every row once."""

    name = "ab_tokens"

    def pending(self, txn: Txn) -> int:
        return int(txn.scalar("SELECT COUNT(*) FROM ab_cards WHERE tokens = 0"))

    def convert(self, txn: Txn, keyring: Keyring, limit: int) -> int:
        cards = txn.query("SELECT c.id, c.book_id, b.user_id FROM ab_cards c JOIN ab_books b ON b.id = c.book_id"
                          " WHERE c.tokens = 0 ORDER BY c.id LIMIT ?", (limit,))
        if not cards:
            return 0
        keys = {int(c[0]): key(txn, int(c[2])) for c in cards}
        values: dict[int, list[tuple[str, str]]] = {card_id: [] for card_id in keys}
        ids = sorted(keys)
        for card_id, prop, stored, sealed in txn.query("SELECT card_id, prop, value, value_s FROM ab_index"
                                                       f" WHERE card_id IN ({placeholders(len(ids))})", ids):
            k = keys[int(card_id)]
            text = stored if sealed is None else k.open_text(f"ab_index|{card_id}|{prop}|{stored}", sealed)
            values[int(card_id)].append((prop, text))
        for card_id, book_id, _owner in cards:
            _add_tokens(txn, keys[int(card_id)], int(book_id), int(card_id), values[int(card_id)])
            txn.execute("UPDATE ab_cards SET tokens = 1 WHERE id = ?", (card_id,))
        return len(cards)


def atrest_tables() -> list[Any]:
    join = " JOIN ab_books b ON b.id = t.book_id"
    return [TokenBackfill(), SealedTable("ab_cards", "ab_cards", "b.user_id",
                        "t.id, t.book_id, t.name, t.uid, t.fn, t.meta_s, t.data, t.data_s", _convert_card, join),
            SealedTable("ab_index", "ab_index", "b.user_id", "t.card_id, t.prop, t.value, t.value_s, t.kv",
                        _convert_index, join),
            MEMBERS.changes_atrest_table()]
