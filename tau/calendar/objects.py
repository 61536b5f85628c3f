"""Calendar object resources, their instance index and change log: transaction functions.

A write replaces the object's index rows and bumps the calendar's ``sync_seq`` in the same
transaction, so ctag, sync-token, ETag and index can never disagree. ``candidates`` answers
a time-range with one range scan (RFC 4791 §9.9; Xandikos' index idea): short instances by
``start_utc`` between ``query_start - 31 days`` and ``query_end``, the rare long ones apart,
floating ones widened by the ±14 h a time zone can move them; callers refine floating rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tau.calendar.ical import LONG_SPAN, ParsedObject, etag_of
from tau.calendar.store import CalendarError
from tau.storage.database import Txn, placeholders

TOMBSTONES = 2000           # deleted names remembered per calendar for sync-collection
FLOAT_MARGIN = 14 * 3600 + 1
_COLS = "id, calendar_id, name, uid, component, etag, size, created_at, modified_at, indexed_until"


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


def _row(r: tuple[Any, ...], data: str | None = None) -> ObjectRow:
    return ObjectRow(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], int(r[6]), int(r[7]), int(r[8]),
                     None if r[9] is None else int(r[9]), data)


def get(txn: Txn, calendar_id: int, name: str, with_data: bool = False) -> ObjectRow | None:
    extra = ", data" if with_data else ""
    r = txn.query_one(f"SELECT {_COLS}{extra} FROM cal_objects WHERE calendar_id = ? AND name = ?",
                      (calendar_id, name))
    return None if r is None else _row(r, r[10] if with_data else None)


def by_id(txn: Txn, object_id: int) -> ObjectRow | None:
    r = txn.query_one(f"SELECT {_COLS}, data FROM cal_objects WHERE id = ?", (object_id,))
    return None if r is None else _row(r, r[10])


def by_uid(txn: Txn, calendar_id: int, uid: str) -> ObjectRow | None:
    r = txn.query_one(f"SELECT {_COLS}, data FROM cal_objects WHERE calendar_id = ? AND uid = ?", (calendar_id, uid))
    return None if r is None else _row(r, r[10])


def find_uid(txn: Txn, owner_id: int, uid: str) -> list[tuple[str, ObjectRow]]:
    """(calendar name, object) of every calendar (not inbox) of ``owner`` holding ``uid``."""
    rows = txn.query(f"SELECT c.name, {', '.join('o.' + c.strip() for c in _COLS.split(','))}, o.data"
                     " FROM cal_objects o JOIN cal_calendars c ON c.id = o.calendar_id"
                     " WHERE c.user_id = ? AND c.kind = 'calendar' AND o.uid = ? ORDER BY o.id", (owner_id, uid))
    return [(r[0], _row(r[1:], r[11])) for r in rows]


def members(txn: Txn, calendar_id: int, with_data: bool = False) -> list[ObjectRow]:
    extra = ", data" if with_data else ""
    rows = txn.query(f"SELECT {_COLS}{extra} FROM cal_objects WHERE calendar_id = ? ORDER BY name", (calendar_id,))
    return [_row(r, r[10] if with_data else None) for r in rows]


def many(txn: Txn, calendar_id: int, names: Sequence[str]) -> dict[str, ObjectRow]:
    """Objects by name with their data (calendar-multiget), in chunks of 500 names."""
    out: dict[str, ObjectRow] = {}
    names = list(dict.fromkeys(names))
    for i in range(0, len(names), 500):
        chunk = names[i:i + 500]
        marks = placeholders(len(chunk))
        for r in txn.query(f"SELECT {_COLS}, data FROM cal_objects WHERE calendar_id = ? AND name IN ({marks})",
                           (calendar_id, *chunk)):
            out[r[2]] = _row(r, r[10])
    return out


def with_ids(txn: Txn, ids: Sequence[int]) -> list[ObjectRow]:
    out: list[ObjectRow] = []
    ids = list(dict.fromkeys(ids))
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = placeholders(len(chunk))
        out += [_row(r, r[10]) for r in txn.query(f"SELECT {_COLS}, data FROM cal_objects WHERE id IN ({marks})",
                                                  chunk)]
    return out


def _bump(txn: Txn, calendar_id: int, name: str, deleted: bool) -> int:
    """Next sync sequence of the calendar, with ``name`` recorded as changed (RFC 6578 §3)."""
    txn.execute("UPDATE cal_calendars SET sync_seq = sync_seq + 1, modified_at = ? WHERE id = ?",
                (int(txn.now), calendar_id))
    seq = int(txn.scalar("SELECT sync_seq FROM cal_calendars WHERE id = ?", (calendar_id,)))
    txn.execute("DELETE FROM cal_changes WHERE calendar_id = ? AND name = ?", (calendar_id, name))
    txn.execute("INSERT INTO cal_changes (calendar_id, name, seq, deleted) VALUES (?, ?, ?, ?)",
                (calendar_id, name, seq, 1 if deleted else 0))
    if deleted and seq % 100 == 0:
        _prune(txn, calendar_id)
    return seq


def _prune(txn: Txn, calendar_id: int) -> None:
    """Forget the oldest tombstones beyond TOMBSTONES; tokens older than them must resync."""
    cut = txn.scalar("SELECT seq FROM cal_changes WHERE calendar_id = ? AND deleted = 1 ORDER BY seq DESC"
                     f" LIMIT 1 OFFSET {TOMBSTONES}", (calendar_id,))
    if cut is not None:
        txn.execute("DELETE FROM cal_changes WHERE calendar_id = ? AND deleted = 1 AND seq <= ?", (calendar_id, cut))
        txn.execute("UPDATE cal_calendars SET pruned_seq = ? WHERE id = ? AND pruned_seq < ?",
                    (cut, calendar_id, cut))


def put(txn: Txn, calendar_id: int, name: str, parsed: ParsedObject, if_etag: str | None = None,
        create_only: bool = False) -> tuple[ObjectRow, ObjectRow | None]:
    """Create or replace ``name``; returns (row, the replaced row with its data, or None).
    UID clashes are 403 no-uid-conflict."""
    existing = get(txn, calendar_id, name, with_data=True)
    if create_only and existing is not None:
        raise CalendarError(412, "exists", "the resource already exists")
    if if_etag is not None and (existing is None or existing.etag != if_etag):
        raise CalendarError(412, "precondition_failed", "the resource changed")
    clash = txn.query_one("SELECT name FROM cal_objects WHERE calendar_id = ? AND uid = ? AND name <> ?",
                          (calendar_id, parsed.uid, name))
    if clash is not None:
        raise CalendarError(403, "no-uid-conflict:" + clash[0], f"UID already used by {clash[0]}")
    now = int(txn.now)
    etag = etag_of(parsed.text)
    size = len(parsed.text.encode("utf-8"))
    if existing is None:
        row = txn.query_one("INSERT INTO cal_objects (calendar_id, name, uid, component, etag, data, size,"
                            " indexed_until, created_at, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                            " RETURNING id", (calendar_id, name, parsed.uid, parsed.component, etag, parsed.text,
                                              size, parsed.indexed_until, now, now))
        assert row is not None
        object_id = int(row[0])
    else:
        object_id = existing.id
        txn.execute("UPDATE cal_objects SET uid = ?, component = ?, etag = ?, data = ?, size = ?, indexed_until = ?,"
                    " modified_at = ? WHERE id = ?", (parsed.uid, parsed.component, etag, parsed.text, size,
                                                      parsed.indexed_until, now, object_id))
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
    changed = txn.query("SELECT name, deleted FROM cal_changes WHERE calendar_id = ? AND seq > ? ORDER BY seq",
                        (calendar_id, since))
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
    rows = txn.query(f"SELECT {_COLS}, data FROM cal_objects WHERE calendar_id = ? AND indexed_until IS NOT NULL"
                     f" AND indexed_until < ? {extra}", (calendar_id, end + FLOAT_MARGIN, *args))
    return [_row(r, r[10]) for r in rows]


def of_component(txn: Txn, calendar_id: int, component: str | None) -> list[ObjectRow]:
    """Every object (with data) of a type: calendar-query without a time-range."""
    if component is None:
        return members(txn, calendar_id, with_data=True)
    rows = txn.query(f"SELECT {_COLS}, data FROM cal_objects WHERE calendar_id = ? AND component = ? ORDER BY name",
                     (calendar_id, component))
    return [_row(r, r[10]) for r in rows]
