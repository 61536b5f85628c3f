"""Calls and their participants: transaction functions ``fn(txn, ...)``, no protocol code.

The database is the truth about who may join and who is in a room right now, so every node
(issue 9) answers the same and a join is checked against committed state each time. Someone who
is not invited gets "not found", never "forbidden": a call's existence is not disclosed.
"""

from __future__ import annotations

from typing import Any

from tau.auth import accounts
from tau.storage.database import Txn

STATUSES = ("ringing", "active", "ended")
_CALL_COLUMNS = "c.id, c.title, c.host_id, h.address, c.mode, c.status, c.scheduled_for, c.created_at, " \
                "c.started_at, c.ended_at, c.updated_at"
_PART_COLUMNS = "p.participant_id, u.address, p.guest_name, p.role, p.state, p.audio_muted, p.video_muted, " \
                "p.hand_raised, p.joined_at, p.user_id, p.conn"


class CallError(Exception):
    """A refused call operation: an HTTP status for REST, the code for WebSocket error frames."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found() -> CallError:
    return CallError(404, "call_not_found", "no such call")


def _call(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], "title": row[1], "host_id": int(row[2]), "host": row[3], "mode": row[4],
            "status": row[5], "scheduled_for": row[6], "created_at": int(row[7]), "started_at": row[8],
            "ended_at": row[9], "updated_at": int(row[10])}


def _participant(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], "user": row[1], "name": row[2] or row[1] or "guest", "role": row[3], "state": row[4],
            "audio_muted": bool(row[5]), "video_muted": bool(row[6]), "hand_raised": bool(row[7]),
            "joined_at": row[8], "user_id": row[9], "conn": row[10]}


def get_call(txn: Txn, call_id: str) -> dict[str, Any] | None:
    row = txn.query_one(f"SELECT {_CALL_COLUMNS} FROM calls c JOIN users h ON h.id = c.host_id WHERE c.id = ?",
                        (call_id,))
    return _call(row) if row else None


def participants(txn: Txn, call_id: str) -> list[dict[str, Any]]:
    rows = txn.query(f"SELECT {_PART_COLUMNS} FROM call_participants p LEFT JOIN users u ON u.id = p.user_id"
                     " WHERE p.call_id = ? ORDER BY p.id", (call_id,))
    return [_participant(r) for r in rows]


def member(txn: Txn, call_id: str, user_id: int | None = None, guest_hash: str | None = None) -> dict[str, Any] | None:
    """The participant row of a user, or of the guest holding a token, in one call."""
    if guest_hash is not None:
        where, arg = "p.guest_token_hash = ?", guest_hash
    else:
        where, arg = "p.user_id = ?", user_id
    row = txn.query_one(f"SELECT {_PART_COLUMNS} FROM call_participants p LEFT JOIN users u ON u.id = p.user_id"
                        f" WHERE p.call_id = ? AND {where}", (call_id, arg))
    return _participant(row) if row else None


def guest_call(txn: Txn, guest_hash: str) -> str | None:
    """The call a guest token belongs to."""
    return txn.scalar("SELECT call_id FROM call_participants WHERE guest_token_hash = ?", (guest_hash,))


def call_for(txn: Txn, call_id: str, user_id: int | None = None, guest_hash: str | None = None
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(call, my participant row); 404 for anyone not invited."""
    call = get_call(txn, call_id)
    me = member(txn, call_id, user_id, guest_hash) if call else None
    if call is None or me is None:
        raise not_found()
    return call, me


def create_call(txn: Txn, call_id: str, host_id: int, title: str, mode: str, scheduled_for: int | None,
                now: int, invitees: list[dict[str, Any]]) -> None:
    """``invitees``: ``{participant_id, user_id | guest_name + guest_hash, role}``; the host comes first."""
    txn.execute("INSERT INTO calls (id, title, host_id, mode, status, scheduled_for, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'ringing', ?, ?, ?)", (call_id, title, host_id, mode, scheduled_for, now, now))
    add_invitees(txn, call_id, invitees)


def add_invitees(txn: Txn, call_id: str, invitees: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert new invitees (a user already invited is skipped); returns those added."""
    added = []
    for inv in invitees:
        if inv.get("user_id") is not None and member(txn, call_id, inv["user_id"]) is not None:
            continue
        txn.execute("INSERT INTO call_participants (call_id, participant_id, user_id, guest_name, guest_token_hash,"
                    " role, state) VALUES (?, ?, ?, ?, ?, ?, 'invited')",
                    (call_id, inv["participant_id"], inv.get("user_id"), inv.get("guest_name"),
                     inv.get("guest_hash"), inv["role"]))
        added.append(inv)
    return added


def remove_invitees(txn: Txn, call_id: str, user_ids: list[int], guest_ids: list[str]) -> list[dict[str, Any]]:
    """Uninvite users (never the host) and guests by participant id; returns the rows removed."""
    gone = [p for p in participants(txn, call_id) if p["role"] != "host"
            and ((p["user_id"] is not None and int(p["user_id"]) in user_ids) or p["id"] in guest_ids)]
    for p in gone:
        txn.execute("DELETE FROM call_participants WHERE participant_id = ?", (p["id"],))
    return gone


def update_call(txn: Txn, call_id: str, now: int, title: str | None = None, scheduled_for: Any = ...) -> None:
    if title is not None:
        txn.execute("UPDATE calls SET title = ?, updated_at = ? WHERE id = ?", (title, now, call_id))
    if scheduled_for is not ...:
        txn.execute("UPDATE calls SET scheduled_for = ?, updated_at = ? WHERE id = ?", (scheduled_for, now, call_id))


def end_call(txn: Txn, call_id: str, now: int) -> bool:
    """Ended is final: everyone is out of the room. False when it had already ended."""
    changed = txn.execute("UPDATE calls SET status = 'ended', ended_at = ?, updated_at = ? WHERE id = ?"
                          " AND status <> 'ended'", (now, now, call_id)).rowcount
    if changed:
        txn.execute("UPDATE call_participants SET state = 'left', conn = NULL, left_at = ? WHERE call_id = ?"
                    " AND state = 'joined'", (now, call_id))
    return bool(changed)


#: PATCH status moves a call only forward; "ended" is final (issue 20: ended → ringing is 409)
_FORWARD = {"ringing": ("ringing", "active", "ended"), "active": ("active", "ended"), "ended": ("ended",)}


def change_status(txn: Txn, call: dict[str, Any], status: str, now: int) -> bool:
    """Move ``call`` to ``status`` (ringing|active|ended) if that is forward; True if it changed.
    Staying where it is changes nothing; going back is a 409 ``invalid_transition``."""
    if status not in STATUSES:
        raise CallError(400, "invalid_status", "status is ringing, active or ended")
    current = call["status"]
    if status not in _FORWARD[current]:
        code = "call_ended" if current == "ended" else "invalid_transition"
        raise CallError(409, code, f"a call that is {current} cannot become {status}")
    if status == current:
        return False
    if status == "ended":
        return end_call(txn, call["id"], now)
    return bool(txn.execute("UPDATE calls SET status = 'active', started_at = ?, updated_at = ? WHERE id = ?"
                            " AND status = 'ringing'", (now, now, call["id"])).rowcount)


def joined_count(txn: Txn, call_id: str) -> int:
    return int(txn.scalar("SELECT COUNT(*) FROM call_participants WHERE call_id = ? AND state = 'joined'",
                          (call_id,)) or 0)


def join(txn: Txn, call_id: str, conn: str, now: int, user_id: int | None = None,
         guest_hash: str | None = None) -> dict[str, Any]:
    """Enter the room, checked against the invitation and the call's status every time.

    Returns ``{call, me, replaced, started}``: ``replaced`` is the previous live session of the
    same participant (a reconnect, or a second device taking over), ``started`` whether this join
    turned a ringing call active (two people in the room).
    """
    call, me = call_for(txn, call_id, user_id, guest_hash)
    if call["status"] == "ended":
        raise CallError(410, "call_ended", "this call has ended")
    replaced = me["conn"] if me["state"] == "joined" else None
    txn.execute("UPDATE call_participants SET state = 'joined', conn = ?, joined_at = ?, left_at = NULL"
                " WHERE participant_id = ?", (conn, now, me["id"]))
    started = False
    if call["status"] == "ringing" and joined_count(txn, call_id) >= 2:
        txn.execute("UPDATE calls SET status = 'active', started_at = ?, updated_at = ? WHERE id = ?",
                    (now, now, call_id))
        call["status"], started = "active", True
    return {"call": call, "me": me, "replaced": replaced, "started": started}


def leave(txn: Txn, call_id: str, participant_id: str, conn: str | None, now: int) -> bool:
    """Out of the room, if ``conn`` is still the live session (None: whichever). True if it left."""
    sql = ("UPDATE call_participants SET state = 'left', conn = NULL, left_at = ? WHERE call_id = ?"
           " AND participant_id = ? AND state = 'joined'")
    args: tuple[Any, ...] = (now, call_id, participant_id)
    if conn is not None:
        sql += " AND conn = ?"
        args += (conn,)
    return bool(txn.execute(sql, args).rowcount)


def end_if_empty(txn: Txn, call_id: str, now: int) -> bool:
    """An empty room ends an active call; a caller hanging up before anyone answered ends a ringing
    one (unless it is scheduled: people join a meeting at their own pace). True if it ended."""
    call = get_call(txn, call_id)
    if call is None or call["status"] == "ended" or joined_count(txn, call_id):
        return False
    if call["status"] == "active":
        return end_call(txn, call_id, now)
    host_left = txn.scalar("SELECT 1 FROM call_participants WHERE call_id = ? AND role = 'host' AND state = 'left'",
                           (call_id,))
    if host_left and call["scheduled_for"] is None:
        return end_call(txn, call_id, now)
    return False


def decline(txn: Txn, call_id: str, user_id: int | None, guest_hash: str | None, now: int
            ) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Say no to a ringing call; when every invitee but the host has declined, it ends (1:1 decline).
    Returns (call, me, ended)."""
    call, me = call_for(txn, call_id, user_id, guest_hash)
    if call["status"] == "ended":
        raise CallError(410, "call_ended", "this call has ended")
    if me["role"] == "host":
        raise CallError(409, "host_cannot_decline", "the host ends a call with leave or PATCH")
    txn.execute("UPDATE call_participants SET state = 'declined', conn = NULL WHERE participant_id = ?"
                " AND state <> 'joined'", (me["id"],))
    undecided = txn.scalar("SELECT COUNT(*) FROM call_participants WHERE call_id = ? AND role <> 'host'"
                           " AND state <> 'declined'", (call_id,))
    ended = False
    if call["status"] == "ringing" and not int(undecided or 0) and call["scheduled_for"] is None:
        ended = end_call(txn, call_id, now)
    return call, me, ended


def set_state(txn: Txn, call_id: str, participant_id: str, changes: dict[str, bool]) -> None:
    """Mute and hand-raise flags (column names come from a fixed set, never from the client)."""
    allowed = {"audio_muted", "video_muted", "hand_raised"}
    for column, value in changes.items():
        if column in allowed:
            txn.execute(f"UPDATE call_participants SET {column} = ? WHERE call_id = ? AND participant_id = ?",
                        (int(value), call_id, participant_id))


def history(txn: Txn, user_id: int, limit: int, before: tuple[int, str] | None = None,
            status: str | None = None) -> list[dict[str, Any]]:
    """Calls the user is or was invited to, newest first; keyset pagination on (created_at, id)."""
    sql = (f"SELECT {_CALL_COLUMNS} FROM calls c JOIN users h ON h.id = c.host_id"
           " JOIN call_participants me ON me.call_id = c.id AND me.user_id = ?")
    args: list[Any] = [user_id]
    where = []
    if before is not None:
        where.append("(c.created_at < ? OR (c.created_at = ? AND c.id < ?))")
        args += [before[0], before[0], before[1]]
    if status is not None:
        where.append("c.status = ?")
        args.append(status)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY c.created_at DESC, c.id DESC LIMIT ?"
    args.append(limit)
    calls = [_call(r) for r in txn.query(sql, args)]
    for call in calls:
        call["participants"] = participants(txn, call["id"])
    return calls


def ringing_for(txn: Txn, user_id: int, since: int) -> list[dict[str, Any]]:
    """Unscheduled ringing calls this user has not answered, created after ``since`` (ms)."""
    rows = txn.query(f"SELECT {_CALL_COLUMNS} FROM calls c JOIN users h ON h.id = c.host_id"
                     " JOIN call_participants me ON me.call_id = c.id AND me.user_id = ?"
                     " WHERE c.status = 'ringing' AND c.scheduled_for IS NULL AND c.created_at >= ?"
                     " AND me.role <> 'host' AND me.state = 'invited' ORDER BY c.created_at", (user_id, since))
    return [_call(r) for r in rows]


def user_ids(txn: Txn, addresses: list[str]) -> dict[str, int]:
    """Enabled local users among ``addresses``, address → id."""
    return accounts.enabled_user_ids(txn, addresses)


def local_domain(txn: Txn, domain: str) -> bool:
    return txn.query_one("SELECT 1 FROM domains WHERE name = ?", (domain,)) is not None
