"""Calendar collections and shares: transaction functions ``fn(txn, ...)`` (no protocol here).

Every user gets a default calendar (``calendar``, events) and task list (``tasks``, to-dos) and
a scheduling inbox (RFC 6638 §2.2) on first use. ``access`` answers "what may this user do with
this calendar" in one place: the owner everything, a share grantee read or read-write (the
calendar then also appears in the grantee's home under the share's name), anyone else nothing.

A calendar's display name and description are sealed at rest under its owner's key (``sealed``,
bound to owner and name); its name is the URL segment and stays readable, as do colours, order
and time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tau.atrest.sealed import SealedTable
from tau.dav.collection_store import CollectionTable, share_alias, valid_name
from tau.dav.collection_store import user_id as user_id  # the domain's own name for it
from tau.dav.collections import CollectionError
from tau.storage.database import Txn

DEFAULTS = (("calendar", "Calendar", "VEVENT,VJOURNAL"), ("tasks", "Tasks", "VTODO"))
INBOX, OUTBOX = "inbox", "outbox"
RESERVED = {INBOX, OUTBOX}
_COLS = ("c.id, c.user_id, u.address, c.name, c.kind, c.display_name, c.description, c.color, c.sort_order,"
         " c.timezone, c.components, c.sync_seq, c.pruned_seq, c.created_at, c.modified_at, c.sealed")
TABLE = CollectionTable("cal_calendars", "cal_props", "cal_shares", "calendar_id")


class CalendarError(CollectionError):
    """A calendar or calendar object refused (the DAV collection error of this domain)."""


@dataclass(frozen=True)
class CalendarRow:
    id: int
    user_id: int
    owner: str
    name: str
    kind: str
    display_name: str
    description: str
    color: str
    sort_order: int | None
    timezone: str
    components: tuple[str, ...]
    sync_seq: int
    pruned_seq: int
    created_at: int
    modified_at: int


@dataclass(frozen=True)
class Access:
    """A calendar as one user sees it: under which name, and whether they may write."""

    calendar: CalendarRow
    name: str                 # the segment in the viewer's home (the share's name for a grantee)
    writable: bool
    owned: bool

    @property
    def id(self) -> int:
        return self.calendar.id


_sealed = TABLE.seal


def _row(txn: Txn, r: tuple[Any, ...]) -> CalendarRow:
    display, description = TABLE.labels(txn, int(r[1]), r[3], r[5], r[6], r[15])
    return CalendarRow(int(r[0]), int(r[1]), r[2], r[3], r[4], display, description, r[7],
                       None if r[8] is None else int(r[8]), r[9], tuple(x for x in r[10].split(",") if x),
                       int(r[11]), int(r[12]), int(r[13]), int(r[14]))


def ensure_defaults(txn: Txn, uid: int) -> None:
    """The default calendar, task list and inbox, created once (idempotent)."""
    existing = {r[0] for r in txn.query("SELECT name FROM cal_calendars WHERE user_id = ?", (uid,))}
    if existing >= {d[0] for d in DEFAULTS} | {INBOX}:
        return
    now = int(txn.now)
    for name, label, comps in DEFAULTS:
        if name not in existing and not existing - {INBOX}:
            txn.execute("INSERT INTO cal_calendars (user_id, name, components, created_at, modified_at, sealed, kv)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, name) DO NOTHING",  # concurrent first use
                        (uid, name, comps, now, now, *_sealed(txn, uid, name, label)))
    if INBOX not in existing:
        txn.execute("INSERT INTO cal_calendars (user_id, name, kind, components, created_at,"
                    " modified_at, sealed, kv) VALUES (?, ?, 'inbox', 'VEVENT,VTODO,VJOURNAL,VFREEBUSY', ?, ?, ?, ?)"
                    " ON CONFLICT (user_id, name) DO NOTHING",
                    (uid, INBOX, now, now, *_sealed(txn, uid, INBOX, "Inbox")))


def get(txn: Txn, owner_id: int, name: str) -> CalendarRow | None:
    row = txn.query_one(f"SELECT {_COLS} FROM cal_calendars c JOIN users u ON u.id = c.user_id"
                        " WHERE c.user_id = ? AND c.name = ?", (owner_id, name))
    return _row(txn, row) if row else None


def by_id(txn: Txn, calendar_id: int) -> CalendarRow | None:
    row = txn.query_one(f"SELECT {_COLS} FROM cal_calendars c JOIN users u ON u.id = c.user_id WHERE c.id = ?",
                        (calendar_id,))
    return _row(txn, row) if row else None


def owned(txn: Txn, owner_id: int) -> list[CalendarRow]:
    return [_row(txn, r) for r in txn.query(f"SELECT {_COLS} FROM cal_calendars c JOIN users u ON u.id = c.user_id"
                                       " WHERE c.user_id = ? ORDER BY c.id", (owner_id,))]


def visible(txn: Txn, viewer_id: int) -> list[Access]:
    """The viewer's own calendars (inbox included) and those shared with them, in home order."""
    out = [Access(c, c.name, True, True) for c in owned(txn, viewer_id)]
    for r in txn.query(f"SELECT {_COLS}, s.name, s.permission FROM cal_shares s"
                       " JOIN cal_calendars c ON c.id = s.calendar_id JOIN users u ON u.id = c.user_id"
                       " WHERE s.grantee_id = ? ORDER BY s.id", (viewer_id,)):
        out.append(Access(_row(txn, r), r[16], r[17] == "write", False))
    return out


def access(txn: Txn, viewer_id: int, owner_id: int, name: str) -> Access | None:
    """``owner``'s calendar ``name`` as ``viewer`` may use it, or None (not there, or not shared)."""
    if viewer_id == owner_id:
        cal = get(txn, owner_id, name)
        if cal is None:
            r = txn.query_one(f"SELECT {_COLS}, s.name, s.permission FROM cal_shares s"
                              " JOIN cal_calendars c ON c.id = s.calendar_id JOIN users u ON u.id = c.user_id"
                              " WHERE s.grantee_id = ? AND s.name = ?", (viewer_id, name))
            return Access(_row(txn, r), r[16], r[17] == "write", False) if r else None
        return Access(cal, cal.name, True, True)
    r = txn.query_one(f"SELECT {_COLS}, s.name, s.permission FROM cal_shares s"
                      " JOIN cal_calendars c ON c.id = s.calendar_id JOIN users u ON u.id = c.user_id"
                      " WHERE s.grantee_id = ? AND c.user_id = ? AND c.name = ?", (viewer_id, owner_id, name))
    return Access(_row(txn, r), r[3], r[17] == "write", False) if r else None


def check_name(name: str) -> None:
    if not valid_name(name):
        raise CalendarError(400, "invalid_name", "invalid calendar name")
    if name.lower() in RESERVED:
        raise CalendarError(403, "reserved_name", f"{name} is reserved")


def create(txn: Txn, owner_id: int, name: str, display_name: str = "", components: tuple[str, ...] = (),
           props: dict[str, str] | None = None, fields: dict[str, Any] | None = None) -> CalendarRow:
    """MKCALENDAR (RFC 4791 §5.3.1) / extended MKCOL (RFC 5689): a new, empty calendar."""
    check_name(name)
    ensure_defaults(txn, owner_id)
    if get(txn, owner_id, name) is not None or txn.scalar(
            "SELECT 1 FROM cal_shares WHERE grantee_id = ? AND name = ?", (owner_id, name)):
        raise CalendarError(405, "exists", "a resource exists at this URL")
    now = int(txn.now)
    comps = ",".join(components or ("VEVENT", "VTODO", "VJOURNAL"))
    txn.execute("INSERT INTO cal_calendars (user_id, name, components, created_at, modified_at, sealed, kv)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (owner_id, name, comps, now, now,
                                                  *_sealed(txn, owner_id, name, display_name or name)))
    cal = get(txn, owner_id, name)
    assert cal is not None
    if fields:
        update(txn, cal.id, **{k: v for k, v in fields.items() if k != "display_name"})
    if props:
        set_props(txn, cal.id, props, [])
    return get(txn, owner_id, name)  # type: ignore[return-value]


_FIELDS = {"display_name", "description", "color", "sort_order", "timezone"}


def update(txn: Txn, calendar_id: int, **fields: Any) -> None:
    for field in fields:
        if field not in _FIELDS:
            raise KeyError(field)
    plain = {k: v for k, v in fields.items() if k not in ("display_name", "description")}
    for field, value in plain.items():
        txn.execute(f"UPDATE cal_calendars SET {field} = ?, modified_at = ? WHERE id = ?",
                    (value, int(txn.now), calendar_id))
    if len(plain) < len(fields):
        cal = by_id(txn, calendar_id)
        if cal is None:
            return
        TABLE.set_labels(txn, calendar_id, cal.user_id, cal.name, fields.get("display_name", cal.display_name),
                         fields.get("description", cal.description))


def delete(txn: Txn, calendar_id: int) -> None:
    """Objects, index rows, changes, props and shares go with it (ON DELETE CASCADE)."""
    txn.execute("DELETE FROM cal_instances WHERE calendar_id = ?", (calendar_id,))
    txn.execute("DELETE FROM cal_calendars WHERE id = ?", (calendar_id,))


props = TABLE.props
set_props = TABLE.set_props


# -- sharing --------------------------------------------------------------------------------------

def share(txn: Txn, owner_id: int, name: str, grantee: str, permission: str) -> str:
    """Share ``owner``'s calendar with a local user; returns its name in the grantee's home."""
    if permission not in ("read", "write"):
        raise CalendarError(400, "invalid_permission", "permission is read or write")
    cal = get(txn, owner_id, name)
    if cal is None or cal.kind != "calendar":
        raise CalendarError(404, "not_found", "no such calendar")
    gid = user_id(txn, grantee)
    if gid is None or gid == owner_id:
        raise CalendarError(400, "invalid_grantee", "share with another local user")
    existing = txn.query_one("SELECT name FROM cal_shares WHERE calendar_id = ? AND grantee_id = ?", (cal.id, gid))
    if existing:
        txn.execute("UPDATE cal_shares SET permission = ? WHERE calendar_id = ? AND grantee_id = ?",
                    (permission, cal.id, gid))
        if permission != "write":
            _drop_locks(txn, cal, gid)
        return str(existing[0])
    taken = {r[0] for r in txn.query("SELECT name FROM cal_calendars WHERE user_id = ? UNION"
                                     " SELECT name FROM cal_shares WHERE grantee_id = ?", (gid, gid))}
    alias = share_alias(name, cal.owner, taken, RESERVED)
    txn.execute("INSERT INTO cal_shares (calendar_id, grantee_id, name, permission, created_at) VALUES (?, ?, ?, ?, ?)",
                (cal.id, gid, alias, permission, int(txn.now)))
    return alias


def unshare(txn: Txn, owner_id: int, name: str, grantee: str) -> bool:
    cal = get(txn, owner_id, name)
    gid = user_id(txn, grantee)
    if cal is None or gid is None:
        return False
    txn.execute("DELETE FROM cal_shares WHERE calendar_id = ? AND grantee_id = ?", (cal.id, gid))
    gone = txn.rowcount > 0
    _drop_locks(txn, cal, gid)
    return gone


def _drop_locks(txn: Txn, cal: Any, grantee_id: int) -> None:
    """The grantee's WebDAV locks on the calendar go with their write access (issue 13)."""
    from tau.dav.lockdb import delete_held_within

    address = txn.scalar("SELECT address FROM users WHERE id = ?", (grantee_id,))
    if address is not None:
        delete_held_within(txn, "/dav", ("calendars", cal.owner, cal.name), str(address))


shares_of = TABLE.shares_of


def mark_imip_seen(txn: Txn, user_id: int, key: str) -> bool:
    """Remember an iMIP message for a user; False when it was seen before."""
    if txn.scalar("SELECT 1 FROM cal_imip_seen WHERE user_id = ? AND message_key = ?", (user_id, key)):
        return False
    txn.execute("INSERT INTO cal_imip_seen (user_id, message_key, seen_at) VALUES (?, ?, ?)",
                (user_id, key, int(txn.now)))
    return True


def atrest_tables() -> list[SealedTable]:
    return [TABLE.atrest_table()]
