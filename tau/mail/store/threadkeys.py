"""THREAD keys kept as keyed hashes (issue 21): a cold THREAD without decrypting anything.

THREAD=REFERENCES and ORDEREDSUBJECT only ever compare Message-IDs, parent ids and base subjects
for equality (and, for ORDEREDSUBJECT, group equal subjects: the order among groups is by date).
So a content's ``mail_thread_keys`` row holds, instead of the texts, their keyed hashes under the
owner's index key (``UserKey.tokens``, purpose ``thread``; ids as ``m:<id>``, the base subject as
``s:<subject>``), packed as big-endian signed 64-bit integers:
``reply (0/1), subject, message_id, parent ids...`` (0: no subject / no Message-ID).
Hashes compare as the texts do (a collision among one user's 2^64 values is not a practical
concern); the database holds no readable id or subject, and without the secret the hashes
cannot be tested against guesses. The index key survives data-key rotations, so rows are never
re-written.
"""

from __future__ import annotations

import struct

from tau.atrest.keyring import UserKey
from tau.mail.store.sortkeys import SortKeys
from tau.storage.database import Txn

PURPOSE = "thread"
_EMPTY = SortKeys("", False, "", "", "", "", "", "", "")


def pack(uk: UserKey, keys: SortKeys | None) -> bytes:
    """The stored form of one content's THREAD keys (see the module docstring)."""
    k = keys or _EMPTY
    refs = k.refs.split()
    terms = ["s:" + k.subject, "m:" + k.message_id, *("m:" + r for r in refs)]
    tokens = [t or 1 for t in uk.tokens(PURPOSE, terms)]  # 0 is kept for "none"
    values = [int(k.reply), tokens[0] if k.subject else 0, tokens[1] if k.message_id else 0, *tokens[2:]]
    return struct.pack(f">{len(values)}q", *values)


def unpack(value: bytes | memoryview) -> tuple[int, bool, int, tuple[int, ...]]:
    """(subject, reply, message_id, parent ids) of a stored value."""
    size = len(value)
    layout = _LAYOUTS.get(size)
    if layout is None:
        layout = _LAYOUTS.setdefault(size, struct.Struct(f">{size // 8}q"))
    v = layout.unpack(value)
    return v[1], v[0] != 0, v[2], v[3:]


#: ``struct.Struct`` per stored length (a THREAD unpacks a whole mailbox's rows)
_LAYOUTS: dict[int, struct.Struct] = {}
#: the stored form of no subject, no Message-ID, no parents
NONE = bytes(24)


def store(txn: Txn, content_id: int, uk: UserKey, keys: SortKeys | None) -> None:
    txn.execute("INSERT INTO mail_thread_keys (content_id, keys) VALUES (?, ?) ON CONFLICT (content_id) DO NOTHING",
                (int(content_id), pack(uk, keys)))


#: contents without their THREAD keys yet (stored before ``mail_thread_keys``)
MISSING = " FROM mail_content c WHERE NOT EXISTS (SELECT 1 FROM mail_thread_keys t WHERE t.content_id = c.id)"
