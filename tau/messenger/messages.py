"""Messages, per-device delivery queues and receipts (transaction functions).

Sending follows Signal-Server's MessageController: an E2E message carries one envelope per
device of every member (the sender's other devices included, for multi-device sync), and a
sender whose view of the device lists is out of date is refused with the ``missing``,
``extra`` and ``stale`` devices so it can fix its sessions and retry. Each envelope goes into
the recipient device's queue and is deleted when that device acknowledges it, so ciphertext
lives on the server only until delivery. Ids and timestamps are assigned here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tau.atrest.sealed import key, key_if_user, open_or
from tau.messenger.conversations import is_member
from tau.messenger.errors import MessengerError
from tau.storage.database import Txn, placeholders

MAX_ENVELOPE = 256 * 1024  # base64 characters per device envelope
MAX_BODY = 64 * 1024  # characters of a plaintext body
#: readers page messages by ``id > last seen`` (``since``, cursors, the socket's replay), so every
#: message insert holds this commit-order lock (tau.storage.database.Txn.commit_in_id_order)
MESSAGE_ORDER = 0x7A55_0002
_B64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")

Device = tuple[str, int]  # (address, device id)


@dataclass
class DeviceMismatch(Exception):
    """The sender's device lists are out of date (HTTP 409)."""

    missing: list[Device] = field(default_factory=list)
    extra: list[Device] = field(default_factory=list)
    stale: list[Device] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[dict[str, Any]]]:
        def listed(devices: list[Device]) -> list[dict[str, Any]]:
            return [{"user": u, "device_id": d} for u, d in sorted(devices)]

        return {"missing": listed(self.missing), "extra": listed(self.extra), "stale": listed(self.stale)}


@dataclass(frozen=True)
class Envelope:
    user: str
    device_id: int
    ciphertext: str
    registration_id: int | None = None


def check_ciphertext(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ENVELOPE or not _B64.match(value):
        raise MessengerError(400, "invalid_envelope", f"ciphertext must be base64, at most {MAX_ENVELOPE} characters")
    return value


Routing = tuple[str, bool, dict[int, str], dict[str, dict[int, int]]]


def _routing(txn: Txn, conv_id: int) -> Routing:
    """(kind, encrypted, members {id: address}, devices {address: {device: registration id}}) in one
    query; kept for the transaction, so a batch of sends to one conversation reads it once."""
    memo_key = ("msg-routing", conv_id)
    found: Routing | None = txn.memo.get(memo_key)
    if found is None:
        rows = txn.query("SELECT c.kind, c.encrypted, u.id, u.address, d.device_id, d.registration_id"
                         " FROM msg_conversations c JOIN msg_members m ON m.conversation_id = c.id"
                         " JOIN users u ON u.id = m.user_id LEFT JOIN msg_devices d ON d.user_id = u.id"
                         " WHERE c.id = ?", (conv_id,))
        members: dict[int, str] = {}
        devices: dict[str, dict[int, int]] = {}
        for _kind, _encrypted, uid, address, device, registration in rows:
            members[int(uid)] = address
            devs = devices.setdefault(address, {})
            if device is not None:
                devs[int(device)] = int(registration)
        kind, encrypted = (rows[0][0], bool(rows[0][1])) if rows else ("", False)
        found = txn.memo[memo_key] = (kind, encrypted, members, devices)
    return found


def post(txn: Txn, sender_id: int, sender: str, sender_device: int, conv_id: int, body: str | None,
         envelopes: list[Envelope] | None, attachments: list[dict[str, Any]], now_ms: int
         ) -> tuple[dict[str, Any], list[tuple[str, int, str | None]]]:
    """Store a message and queue it per device; returns (message, deliveries [(user, device, envelope)])."""
    kind, encrypted, members, devices = _routing(txn, conv_id)
    if sender_id not in members:
        raise MessengerError(404, "conversation_not_found", "no such conversation")
    if encrypted and envelopes is None:
        raise MessengerError(400, "conversation_encrypted", "this conversation takes E2E envelopes, not a body")
    if not encrypted and envelopes is not None:
        raise MessengerError(400, "conversation_not_encrypted", "this conversation is plaintext: send a body")
    if sender_device and sender_device not in devices.get(sender, {}):
        raise MessengerError(400, "unknown_device", f"device {sender_device} is not registered for {sender}")
    deliveries: list[tuple[str, int, str | None]] = []
    if envelopes is not None:
        if kind == "direct" and len(devices) == 2 and not any(d for a, d in devices.items() if a != sender):
            raise MessengerError(404, "no_devices", "the recipient has no registered device yet")
        expected = {(a, d) for a, devs in devices.items() for d in devs} - {(sender, sender_device)}
        given: dict[Device, Envelope] = {}
        for env in envelopes:
            if (env.user, env.device_id) in given:
                raise MessengerError(400, "duplicate_envelope", f"two envelopes for {env.user} device {env.device_id}")
            given[(env.user, env.device_id)] = env
        mismatch = DeviceMismatch(
            missing=sorted(expected - set(given)), extra=sorted(set(given) - expected),
            stale=sorted(k for k, e in given.items() if k in expected and e.registration_id is not None
                         and e.registration_id != devices[k[0]][k[1]]))
        if mismatch.missing or mismatch.extra or mismatch.stale:
            raise mismatch
        deliveries = [(e.user, e.device_id, e.ciphertext) for e in envelopes]
    else:
        for address, devs in devices.items():
            for dev in (sorted(devs) or [0]):
                if (address, dev) != (sender, sender_device):
                    deliveries.append((address, dev, None))
    k = key(txn, sender_id)
    ctx = _context(conv_id, sender_id, now_ms)
    ids = {address: uid for uid, address in members.items()}
    queue = [(ids[u], d, env) for u, d, env in deliveries]
    row = (conv_id, sender_id, sender_device, now_ms, None if body is None else "",
           None if body is None else k.seal(ctx + "|body", body),
           k.seal(ctx + "|attachments", json.dumps(attachments)) if attachments else None, sender_id, k.version)
    message = {"id": "", "conversation": str(conv_id), "from": sender, "from_device": sender_device,
               "timestamp_ms": now_ms, "encrypted": encrypted}
    if body is not None:
        message["body"] = body
    if attachments:
        message["attachments"] = attachments
    # checked: what is left cannot be refused, so the sends of a group commit's batch are written
    # together, in one statement on PostgreSQL, just before commit; ``message["id"]`` is set then
    txn.write_at_end("msg-post", _write, (row, queue, message))
    return message, deliveries


Pending = tuple[tuple[Any, ...], list[tuple[int, int, str | None]], dict[str, Any]]


def _write(txn: Txn, pending: list[Pending]) -> None:
    """Insert the checked sends of a transaction in their order, under the commit-order lock."""
    txn.commit_in_id_order(MESSAGE_ORDER)
    chunk: list[Pending] = []
    size = 0
    for item in pending:
        cost = 10 + 4 * len(item[1])
        if txn.engine.name != "postgres" or cost > MAX_PARAMETERS:
            _write_together(txn, chunk)
            chunk, size = [], 0
            _write_one(txn, item)
            continue
        if size + cost > MAX_PARAMETERS:
            _write_together(txn, chunk)
            chunk, size = [], 0
        chunk.append(item)
        size += cost
    _write_together(txn, chunk)


def _write_one(txn: Txn, item: Pending) -> None:
    row, queue, message = item
    msg_id = int(txn.scalar(_INSERT_MESSAGE, row))
    txn.executemany("INSERT INTO msg_queue (user_id, device_id, message_id, envelope) VALUES (?, ?, ?, ?)",
                    [(u, d, msg_id, env) for u, d, env in queue])
    message["id"] = str(msg_id)


def _write_together(txn: Txn, chunk: list[Pending]) -> None:
    """PostgreSQL: the messages and their queue rows in one statement (one round trip). Ids are
    taken in the order of ``n`` (the insert reads its rows sorted), so the k-th smallest new id
    is the k-th message."""
    if not chunk:
        return
    params: list[Any] = []
    queue: list[Any] = []
    for n, (row, rows, _message) in enumerate(chunk):
        params += [n, *row]
        for u, d, env in rows:
            queue += [n, u, d, env]
    sql = ("WITH v (n, conversation_id, sender_id, sender_device, created_at, body, body_s, attachments_s, key_user,"
           " kv) AS (VALUES " + ", ".join([_ROW] * len(chunk)) + "),"
           " m AS (INSERT INTO msg_messages (conversation_id, sender_id, sender_device, created_at, body, attachments,"
           " body_s, attachments_s, key_user, kv) SELECT conversation_id, sender_id, sender_device, created_at, body,"
           " NULL, body_s, attachments_s, key_user, kv FROM v ORDER BY n RETURNING id),"
           " o AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM m)")
    if queue:
        sql += (", q AS (INSERT INTO msg_queue (user_id, device_id, message_id, envelope) SELECT w.u, w.d, o.id, w.e"
                " FROM o JOIN (VALUES " + ", ".join(["(?::bigint, ?::bigint, ?::bigint, ?::text)"] * (len(queue) // 4))
                + ") AS w (n, u, d, e) ON w.n = o.n)")
    ids = [int(r[0]) for r in txn.query(sql + " SELECT id FROM o ORDER BY n", [*params, *queue])]
    for (_row, _rows, message), msg_id in zip(chunk, ids, strict=True):
        message["id"] = str(msg_id)


_INSERT_MESSAGE = ("INSERT INTO msg_messages (conversation_id, sender_id, sender_device, created_at, body, attachments,"
                   " body_s, attachments_s, key_user, kv) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?) RETURNING id")
RECEIPTS_PER_STATEMENT = 200  # rows of one receipts INSERT (4 parameters each)
MAX_PARAMETERS = 30000  # of one statement writing several messages (PostgreSQL allows 65535)
_ROW = "(?::bigint, ?::bigint, ?::bigint, ?::bigint, ?::bigint, ?::text, ?::bytea, ?::bytea, ?::bigint, ?::integer)"

_FRAME_SELECT = ("SELECT m.id, m.conversation_id, u.address, m.sender_device, m.created_at, c.encrypted, m.body,"
                 " m.attachments, q.envelope, m.body_s, m.attachments_s, m.key_user"
                 " FROM msg_messages m JOIN msg_conversations c ON c.id = m.conversation_id"
                 " LEFT JOIN users u ON u.id = m.sender_id ")


def _context(conv_id: int, sender_id: int | None, created_ms: int) -> str:
    """Bound to conversation, sender and time (known before the insert: no second statement)."""
    return f"msg_messages|{conv_id}|{sender_id}|{created_ms}"


def _frame(txn: Txn, row: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(row[0]), "conversation": str(row[1]), "from": row[2],
                           "from_device": int(row[3]), "timestamp_ms": int(row[4]), "encrypted": bool(row[5])}
    body, attachments = row[6], row[7]
    if row[9] is not None or row[10] is not None:
        k = key_if_user(txn, row[11])
        ctx = _context(int(row[1]), row[11], int(row[4]))
        body = open_or(k, ctx + "|body", row[9], body or "") if row[9] is not None else body
        attachments = open_or(k, ctx + "|attachments", row[10], "") if row[10] is not None else attachments
    if body is not None:
        out["body"] = body
    if attachments:
        out["attachments"] = json.loads(attachments)
    if row[8] is not None:
        out["envelope"] = row[8]
    return out


def pending(txn: Txn, user_id: int, device_id: int, after_message: int, limit: int) -> list[dict[str, Any]]:
    """A device's queue in order: what it has not acknowledged yet."""
    rows = txn.query(_FRAME_SELECT + "JOIN msg_queue q ON q.message_id = m.id"
                     " WHERE q.user_id = ? AND q.device_id = ? AND q.message_id > ? ORDER BY q.message_id LIMIT ?",
                     (user_id, device_id, after_message, limit))
    return [_frame(txn, r) for r in rows]


def history(txn: Txn, user_id: int, conv_id: int | None, since_id: int, since_ms: int, limit: int,
            device_id: int) -> list[dict[str, Any]]:
    """Messages of the user's conversations (one, or all) since an id or time, oldest first.

    E2E items carry this device's envelope while it is still queued; members see what was sent
    since they joined.
    """
    sql = (_FRAME_SELECT + "JOIN msg_members mm ON mm.conversation_id = m.conversation_id AND mm.user_id = ?"
           " LEFT JOIN msg_queue q ON q.message_id = m.id AND q.user_id = ? AND q.device_id = ?"
           " WHERE m.id > ? AND m.created_at >= ? AND m.created_at >= mm.joined_at")
    params: list[Any] = [user_id, user_id, device_id, since_id, since_ms]
    if conv_id is not None:
        if not is_member(txn, conv_id, user_id):
            raise MessengerError(404, "conversation_not_found", "no such conversation")
        sql += " AND m.conversation_id = ?"
        params.append(conv_id)
    items = [_frame(txn, r) for r in txn.query(sql + " ORDER BY m.id LIMIT ?", (*params, limit))]
    mine = [int(i["id"]) for i in items]
    if mine:
        marks = placeholders(len(mine))
        receipts: dict[str, dict[str, list[str]]] = {}
        for mid, address, kind in txn.query(
                "SELECT r.message_id, u.address, r.kind FROM msg_receipts r JOIN users u ON u.id = r.user_id"
                f" JOIN msg_messages m ON m.id = r.message_id WHERE r.message_id IN ({marks}) AND m.sender_id = ?"
                " ORDER BY u.address", (*mine, user_id)):
            receipts.setdefault(str(mid), {"delivered": [], "read": []})[kind].append(address)
        for item in items:
            if item["id"] in receipts:
                item["receipts"] = receipts[item["id"]]
    return items


def ack(txn: Txn, user_id: int, device_id: int, message_ids: list[int], now_ms: int) -> list[dict[str, Any]]:
    """Delete acknowledged queue entries; the first device of a user to ack makes a delivery receipt."""
    if not message_ids:
        return []
    marks = placeholders(len(message_ids))
    acked = [int(r[0]) for r in txn.query(
        f"SELECT message_id FROM msg_queue WHERE user_id = ? AND device_id = ? AND message_id IN ({marks})",
        (user_id, device_id, *message_ids))]
    if not acked:
        return []
    marks = placeholders(len(acked))
    txn.execute(f"DELETE FROM msg_queue WHERE user_id = ? AND device_id = ? AND message_id IN ({marks})",
                (user_id, device_id, *acked))
    return _receipts(txn, user_id, "delivered", acked, now_ms)


def mark(txn: Txn, user_id: int, kind: str, conv_id: int, message_ids: list[int], now_ms: int) -> list[dict[str, Any]]:
    """Explicit receipts from a reader; ``read`` implies ``delivered``."""
    if not is_member(txn, conv_id, user_id):
        raise MessengerError(404, "conversation_not_found", "no such conversation")
    if not message_ids:
        return []
    marks = placeholders(len(message_ids))
    ids = [int(r[0]) for r in txn.query(
        f"SELECT id FROM msg_messages WHERE conversation_id = ? AND id IN ({marks})", (conv_id, *message_ids))]
    out = _receipts(txn, user_id, "delivered", ids, now_ms) if kind == "read" else []
    return out + _receipts(txn, user_id, kind, ids, now_ms)


def _receipts(txn: Txn, user_id: int, kind: str, ids: list[int], now_ms: int) -> list[dict[str, Any]]:
    """Insert new receipts; returns them grouped per (sender, conversation) for notification."""
    if not ids:
        return []
    marks = placeholders(len(ids))
    rows = txn.query(f"SELECT m.id, m.conversation_id, u.address FROM msg_messages m JOIN users u ON u.id = m.sender_id"
                     f" WHERE m.id IN ({marks}) AND m.sender_id <> ?", (*ids, user_id))
    created: set[int] = set()
    for start in range(0, len(rows), RECEIPTS_PER_STATEMENT):  # one statement per chunk, not per message
        chunk = rows[start:start + RECEIPTS_PER_STATEMENT]
        created.update(int(r[0]) for r in txn.query(
            "INSERT INTO msg_receipts (message_id, user_id, kind, created_at) VALUES "
            + ", ".join(["(?, ?, ?, ?)"] * len(chunk)) + " ON CONFLICT DO NOTHING RETURNING message_id",
            [value for mid, _conv, _sender in chunk for value in (mid, user_id, kind, now_ms)]))
    groups: dict[tuple[str, int], list[str]] = {}
    for mid, conv, sender in rows:
        if int(mid) in created:
            groups.setdefault((sender, int(conv)), []).append(str(mid))
    return [{"kind": kind, "sender": s, "conversation": str(c), "ids": ids_} for (s, c), ids_ in groups.items()]
