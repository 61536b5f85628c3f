"""Calendar object resources, their instance index and change log: transaction functions.

A write replaces the object's index rows and bumps the calendar's ``sync_seq`` in the same
transaction, so ctag, sync-token, ETag and index can never disagree. ``candidates`` answers
a time-range with one range scan (RFC 4791 §9.9; Xandikos' index idea): short instances by
``start_utc`` between ``query_start - 31 days`` and ``query_end``, the rare long ones apart,
floating ones widened by the ±14 h a time zone can move them; callers refine floating rows.

At rest (issue 16) an object's name and UID are keyed lookup hashes under the calendar owner's
index key (``UNIQUE`` and lookups keep working), the real ones sealed in ``meta_s`` and the
iCalendar text in ``data_s``; the instance index (start, end, busy) stays readable so a
time-range query is still one range scan. Rows from before (``kv = 0``) are read as they are
until the converter seals them; lookups try both forms meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tau.atrest.keyring import UserKey
from tau.atrest.sealed import SealedTable, key, open_json, seal_json
from tau.calendar.ical import LONG_SPAN, ParsedObject, etag_of
from tau.calendar.store import CalendarError
from tau.dav.member_store import MemberTable
from tau.storage.database import Txn

TOMBSTONES = 2000           # deleted names remembered per calendar for sync-collection
FLOAT_MARGIN = 14 * 3600 + 1
_COLS = "id, calendar_id, name, uid, component, etag, size, created_at, modified_at, indexed_until, meta_s"
_DATA = ", data, data_s"
NAME, UID = "cal.name", "cal.uid"
MEMBERS = MemberTable("cal_objects", "cal_calendars", "calendar_id", "cal_changes", NAME, TOMBSTONES)


@dataclass(frozen=True)
class ObjectRow:
    id: int
    calendar_id: int
    name: str
    uid: str
    component: str
    etag: str
    size: int
    created_at: int
    modified_at: int
    indexed_until: int | None
    data: str | None = None


owner_key = MEMBERS.owner_key
_ctx = MEMBERS.context
open_data = MEMBERS.open_data


def _row(txn: Txn, r: Sequence[Any], with_data: bool = False) -> ObjectRow:
    name, uid = r[2], r[3]
    if r[10] is not None:
        meta = open_json(owner_key(txn, int(r[1])), _ctx(int(r[1]), r[2]), r[10])
        name, uid = meta["n"], meta["u"]
    data = open_data(txn, int(r[1]), r[2], r[11], r[12]) if with_data else None
    return ObjectRow(int(r[0]), int(r[1]), name, uid, r[4], r[5], int(r[6]), int(r[7]), int(r[8]),
                     None if r[9] is None else int(r[9]), data)


def _lookups(txn: Txn, calendar_id: int, purpose: str, value: str) -> tuple[str, str]:
    """(keyed hash, plaintext): what a row of ``value`` holds sealed, or from before sealing."""
    return owner_key(txn, calendar_id).lookup(purpose, value), value


def _one(txn: Txn, rows: list[tuple[Any, ...]], with_data: bool) -> ObjectRow | None:
    if len(rows) > 1:  # a sealed row and a plaintext one (mid-conversion): the sealed one
        rows = [r for r in rows if r[10] is not None]
    return _row(txn, rows[0], with_data) if rows else None


def get(txn: Txn, calendar_id: int, name: str, with_data: bool = False) -> ObjectRow | None:
    extra = _DATA if with_data else ""
    return _one(txn, txn.query(f"SELECT {_COLS}{extra} FROM cal_objects WHERE calendar_id = ? AND name IN (?, ?)",
                               (calendar_id, *_lookups(txn, calendar_id, NAME, name))), with_data)


def by_id(txn: Txn, object_id: int) -> ObjectRow | None:
    r = txn.query_one(f"SELECT {_COLS}{_DATA} FROM cal_objects WHERE id = ?", (object_id,))
    return None if r is None else _row(txn, r, True)


def by_uid(txn: Txn, calendar_id: int, uid: str) -> ObjectRow | None:
    return _one(txn, txn.query(f"SELECT {_COLS}{_DATA} FROM cal_objects WHERE calendar_id = ? AND uid IN (?, ?)",
                               (calendar_id, *_lookups(txn, calendar_id, UID, uid))), True)


def find_uid(txn: Txn, owner_id: int, uid: str) -> list[tuple[str, ObjectRow]]:
    """(calendar name, object) of every calendar (not inbox) of ``owner`` holding ``uid``."""
    cols = ", ".join("o." + c.strip() for c in (_COLS + _DATA).split(","))
    rows = txn.query(f"SELECT c.name, {cols} FROM cal_objects o JOIN cal_calendars c ON c.id = o.calendar_id"
                     " WHERE c.user_id = ? AND c.kind = 'calendar' AND o.uid IN (?, ?) ORDER BY o.id",
                     (owner_id, key(txn, owner_id).lookup(UID, uid), uid))
    return [(r[0], _row(txn, r[1:], True)) for r in rows]


def members(txn: Txn, calendar_id: int, with_data: bool = False) -> list[ObjectRow]:
    """Every object in name order (sorted here: the database holds only lookup hashes)."""
    extra = _DATA if with_data else ""
    rows = txn.query(f"SELECT {_COLS}{extra} FROM cal_objects WHERE calendar_id = ?", (calendar_id,))
    return sorted((_row(txn, r, with_data) for r in rows), key=lambda o: o.name)


def many(txn: Txn, calendar_id: int, names: Sequence[str]) -> dict[str, ObjectRow]:
    """Objects by name with their data (calendar-multiget), in chunks of 250 names."""
    out: dict[str, ObjectRow] = {}
    for r in MEMBERS.rows_named(txn, calendar_id, names, _COLS + _DATA):
        row = _row(txn, r, True)
        if row.name not in out or r[10] is not None:
            out[row.name] = row
    return out


def with_ids(txn: Txn, ids: Sequence[int]) -> list[ObjectRow]:
    return [_row(txn, r, True) for r in MEMBERS.rows_with_ids(txn, ids, _COLS + _DATA)]


_bump = MEMBERS.bump


def put(txn: Txn, calendar_id: int, name: str, parsed: ParsedObject, if_etag: str | None = None,
        create_only: bool = False) -> tuple[ObjectRow, ObjectRow | None]:
    """Create or replace ``name``; returns (row, the replaced row with its data, or None).
    UID clashes are 403 no-uid-conflict."""
    existing = get(txn, calendar_id, name, with_data=True)
    if create_only and existing is not None:
        raise CalendarError(412, "exists", "the resource already exists")
    if if_etag is not None and (existing is None or existing.etag != if_etag):
        raise CalendarError(412, "precondition_failed", "the resource changed")
    k = owner_key(txn, calendar_id)
    name_h, uid_h = k.lookup(NAME, name), k.lookup(UID, parsed.uid)
    clash_row = txn.query_one(f"SELECT {_COLS} FROM cal_objects WHERE calendar_id = ? AND uid IN (?, ?)"
                              " AND name NOT IN (?, ?)", (calendar_id, uid_h, parsed.uid, name_h, name))
    if clash_row is not None:
        clash = _row(txn, clash_row).name
        raise CalendarError(403, "no-uid-conflict:" + clash, f"UID already used by {clash}")
    now = int(txn.now)
    etag = etag_of(parsed.text)
    size = len(parsed.text.encode("utf-8"))
    meta = seal_json(k, _ctx(calendar_id, name_h), {"n": name, "u": parsed.uid})
    data_s = k.seal(_ctx(calendar_id, name_h, ".data"), parsed.text)
    if existing is None:
        row = txn.query_one("INSERT INTO cal_objects (calendar_id, name, uid, component, etag, data, size,"
                            " indexed_until, created_at, modified_at, meta_s, data_s, kv)"
                            " VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                            (calendar_id, name_h, uid_h, parsed.component, etag, size, parsed.indexed_until, now, now,
                             meta, data_s, k.version))
        assert row is not None
        object_id = int(row[0])
    else:
        object_id = existing.id
        txn.execute("UPDATE cal_objects SET name = ?, uid = ?, component = ?, etag = ?, data = '', size = ?,"
                    " indexed_until = ?, modified_at = ?, meta_s = ?, data_s = ?, kv = ? WHERE id = ?",
                    (name_h, uid_h, parsed.component, etag, size, parsed.indexed_until, now, meta, data_s, k.version,
                     object_id))
        txn.execute("DELETE FROM cal_instances WHERE object_id = ?", (object_id,))
    if parsed.rows:
        txn.executemany("INSERT INTO cal_instances (object_id, calendar_id, start_utc, end_utc, floating, long_span,"
                        " busy, recurrence_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(object_id, calendar_id, r.start, r.end, int(r.floating), int(r.long_span), r.busy,
                          r.recurrence_id) for r in parsed.rows])
    _bump(txn, calendar_id, name, False)
    created_at = existing.created_at if existing is not None else now
    return ObjectRow(object_id, calendar_id, name, parsed.uid, parsed.component, etag, size, created_at, now,
                     parsed.indexed_until, parsed.text), existing


def delete(txn: Txn, calendar_id: int, name: str) -> ObjectRow | None:
    existing = get(txn, calendar_id, name, with_data=True)
    if existing is None:
        return None
    txn.execute("DELETE FROM cal_instances WHERE object_id = ?", (existing.id,))
    txn.execute("DELETE FROM cal_objects WHERE id = ?", (existing.id,))
    _bump(txn, calendar_id, name, True)
    return existing


def sync_state(txn: Txn, calendar_id: int, since: int) -> tuple[int, list[ObjectRow], list[str]] | None:
    """(current seq, changed members, removed names) after ``since``; None when too old."""
    row = txn.query_one("SELECT sync_seq, pruned_seq FROM cal_calendars WHERE id = ?", (calendar_id,))
    if row is None:
        return None
    seq, pruned = int(row[0]), int(row[1])
    if since and since < pruned:
        return None
    if not since:
        return seq, members(txn, calendar_id), []
    changed = [(name, deleted) for name, _seq, deleted in MEMBERS.changed_since(txn, calendar_id, since)]
    live = many(txn, calendar_id, [r[0] for r in changed if not r[1]])
    removed = [r[0] for r in changed if r[1] or r[0] not in live]
    return seq, [live[r[0]] for r in changed if r[0] in live], removed


# -- the instance index ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    object_id: int
    start: int
    end: int
    floating: bool
    busy: str
    recurrence_id: str


def candidates(txn: Txn, calendar_id: int, start: int, end: int, component: str | None = None) -> list[Hit]:
    """Index rows that may overlap ``[start, end)``; floating rows still need the query's offset."""
    comp_join, comp_args = "", []
    if component:
        comp_join = " JOIN cal_objects o ON o.id = i.object_id AND o.component = ?"
        comp_args = [component]
    cols = "i.object_id, i.start_utc, i.end_utc, i.floating, i.busy, i.recurrence_id"
    lo, hi = start - FLOAT_MARGIN, end + FLOAT_MARGIN
    rows = txn.query(f"SELECT {cols} FROM cal_instances i{comp_join} WHERE i.calendar_id = ? AND i.long_span = 0"
                     " AND i.start_utc >= ? AND i.start_utc < ? AND i.end_utc > ?"
                     f" UNION ALL SELECT {cols} FROM cal_instances i{comp_join} WHERE i.calendar_id = ?"
                     " AND i.long_span = 1 AND i.start_utc < ? AND i.end_utc > ?",
                     (*comp_args, calendar_id, lo - LONG_SPAN, hi, lo, *comp_args, calendar_id, hi, lo))
    out = []
    for r in rows:
        floating = bool(r[3])
        s, e = int(r[1]), int(r[2])
        if not floating and not (s < end and e > start):
            continue
        out.append(Hit(int(r[0]), s, e, floating, r[4], r[5]))
    return out


def unindexed(txn: Txn, calendar_id: int, end: int, component: str | None = None) -> list[ObjectRow]:
    """Objects whose index stops before ``end``: their later instances are expanded on demand."""
    extra, args = ("AND component = ?", [component]) if component else ("", [])
    rows = txn.query(f"SELECT {_COLS}{_DATA} FROM cal_objects WHERE calendar_id = ? AND indexed_until IS NOT NULL"
                     f" AND indexed_until < ? {extra}", (calendar_id, end + FLOAT_MARGIN, *args))
    return [_row(txn, r, True) for r in rows]


def of_component(txn: Txn, calendar_id: int, component: str | None) -> list[ObjectRow]:
    """Every object (with data) of a type: calendar-query without a time-range."""
    if component is None:
        return members(txn, calendar_id, with_data=True)
    rows = txn.query(f"SELECT {_COLS}{_DATA} FROM cal_objects WHERE calendar_id = ? AND component = ?",
                     (calendar_id, component))
    return sorted((_row(txn, r, True) for r in rows), key=lambda o: o.name)


# -- encryption at rest of rows written before it (or under a retired key) -----------------------
def _convert_object(txn: Txn, k: UserKey, row: Sequence[Any]) -> None:
    _owner, object_id, calendar_id, stored_name, stored_uid, meta_s, data, data_s = row
    if meta_s is None:
        name, uid = stored_name, stored_uid
    else:
        meta = open_json(k, _ctx(calendar_id, stored_name), meta_s)
        name, uid = meta["n"], meta["u"]
    text = data if data_s is None else k.open_text(_ctx(calendar_id, stored_name, ".data"), data_s)
    name_h, uid_h = k.lookup(NAME, name), k.lookup(UID, uid)
    txn.execute("UPDATE cal_objects SET name = ?, uid = ?, data = '', meta_s = ?, data_s = ?, kv = ? WHERE id = ?",
                (name_h, uid_h, seal_json(k, _ctx(calendar_id, name_h), {"n": name, "u": uid}),
                 k.seal(_ctx(calendar_id, name_h, ".data"), text), k.version, object_id))


def atrest_tables() -> list[SealedTable]:
    join = " JOIN cal_calendars c ON c.id = t.calendar_id"
    return [SealedTable("cal_objects", "cal_objects", "c.user_id",
                        "t.id, t.calendar_id, t.name, t.uid, t.meta_s, t.data, t.data_s", _convert_object, join),
            MEMBERS.changes_atrest_table()]
