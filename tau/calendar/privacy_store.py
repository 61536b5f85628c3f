"""The calendar rows of one user, for a privacy export (:mod:`tau.calendar.privacy`)."""

from __future__ import annotations

from tau.calendar import objects as objs
from tau.storage.database import Txn


def calendars(txn: Txn, user_id: int) -> list[tuple[int, str]]:
    """(id, name) of every calendar of the user, by name."""
    return [(int(r[0]), r[1]) for r in txn.query("SELECT id, name FROM cal_calendars WHERE user_id = ?"
                                                 " ORDER BY name", (user_id,))]


def objects(txn: Txn, calendar_id: int) -> list[str]:
    """The iCalendar text of every object in the calendar, oldest first."""
    return [objs.open_data(txn, calendar_id, r[0], r[1], r[2]) for r in txn.query(
        "SELECT name, data, data_s FROM cal_objects WHERE calendar_id = ? ORDER BY id", (calendar_id,))]
