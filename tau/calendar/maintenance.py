"""Background upkeep of the calendar store: extend the instance index, forget old iMIP message ids.

The index holds instances up to a horizon set at write time (``ical.INDEX_YEARS`` ahead). As
time passes, the horizon of an open-ended rule (a weekly meeting without end, a birthday) comes
closer; a query past it still works (expanded on demand) but costs a parse. Once a day the
objects whose horizon is less than a year away are re-indexed (not changed: no new ETag, no
sync change). Objects capped by ``MAX_INDEXED`` instances gain nothing from it and are skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.application.internet import TimerService

from tau.calendar import ical, objects
from tau.net.periodic import periodic
from tau.storage.database import Txn

if TYPE_CHECKING:
    from tau.registry import Registry
INTERVAL = 24 * 3600.0
BATCH = 200
MAX_BATCHES = 50
SEEN_DAYS = 180


def stale(txn: Txn, before: int, after_id: int, limit: int) -> list[tuple[int, int, str]]:
    """(object id, calendar id, data) of objects indexed only up to before ``before``."""
    return [(int(r[0]), int(r[1]), objects.open_data(txn, int(r[1]), r[2], r[3], r[4])) for r in txn.query(
        "SELECT o.id, o.calendar_id, o.name, o.data, o.data_s FROM cal_objects o WHERE o.indexed_until IS NOT NULL"
        " AND o.indexed_until < ? AND o.id > ? AND (SELECT COUNT(*) FROM cal_instances i WHERE i.object_id = o.id)"
        " < ? ORDER BY o.id LIMIT ?", (before, after_id, ical.MAX_INDEXED, limit))]


def replace_index(txn: Txn, items: list[tuple[int, int, ical.ParsedObject]]) -> None:
    for object_id, calendar_id, parsed in items:
        txn.execute("DELETE FROM cal_instances WHERE object_id = ?", (object_id,))
        txn.executemany("INSERT INTO cal_instances (object_id, calendar_id, start_utc, end_utc, floating, long_span,"
                        " busy, recurrence_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(object_id, calendar_id, r.start, r.end, int(r.floating), int(r.long_span), r.busy,
                          r.recurrence_id) for r in parsed.rows])
        txn.execute("UPDATE cal_objects SET indexed_until = ? WHERE id = ?", (parsed.indexed_until, object_id))


def forget_seen(txn: Txn, before: int) -> int:
    txn.execute("DELETE FROM cal_imip_seen WHERE seen_at < ?", (before,))
    return txn.rowcount


def _reparse(rows: list[tuple[int, int, str]], now: float) -> list[tuple[int, int, ical.ParsedObject]]:
    out = []
    for object_id, calendar_id, data in rows:
        try:
            out.append((object_id, calendar_id, ical.parse_object(data, now=now)))
        except ical.InvalidObject:
            continue
    return out


async def extend_index(registry: Registry) -> int:
    """Re-index objects whose horizon is within a year; returns how many were re-indexed."""
    db = registry.db
    now = registry.clock.seconds()
    before = int(now) + 366 * 86400
    done, last = 0, 0
    for _ in range(MAX_BATCHES):
        rows = await db.run("cal_index_stale", stale, before, last, BATCH, readonly=True)
        if not rows:
            break
        last = rows[-1][0]
        parsed = await registry.run_in_thread(_reparse, rows, now)
        if parsed:
            await db.run("cal_index_extend", replace_index, parsed)
        done += len(parsed)
    await db.run("cal_imip_forget", forget_seen, int(now) - SEEN_DAYS * 86400)
    return done


def service(registry: Registry) -> TimerService:
    return periodic(registry, "calendar-maintenance", INTERVAL, lambda: extend_index(registry),
                    "extended the calendar index of {n} objects", "calendar index maintenance failed")
