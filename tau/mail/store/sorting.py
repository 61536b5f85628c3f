"""SORT (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO) and THREAD reads: one query each.

SORT is one ``SELECT m.uid ... ORDER BY`` over the SEARCH condition (``search.compile_condition``):
ARRIVAL, DATE and SIZE are columns of ``messages`` (DATE has an index, so a whole-mailbox sort
reads it in order), the others come from ``message_sort_keys`` joined by blob. Text keys compare
by code point on both engines (``COLLATE "C"`` on PostgreSQL). Every sort ends with the UID, so
equal keys keep mailbox order (RFC 5256 §3) whatever REVERSE says. THREAD reads the keys of the
matching messages in one query and threads them in Python (``threading``).

A read that meets messages stored before ``message_sort_keys`` existed returns None: the caller
runs ``sortkeys.backfill`` in a write transaction and asks again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tau.mail.store import threading
from tau.mail.store.api import Search
from tau.mail.store.mailboxes import require_owned
from tau.mail.store.search import InvalidSearch, compile_condition

_COLUMNS = {"arrival": "m.internal_date", "date": "m.sent_date", "size": "m.size",
            "subject": "k.subject", "from": "k.from_mbox", "to": "k.to_mbox", "cc": "k.cc_mbox",
            "displayfrom": "k.display_from", "displayto": "k.display_to"}
_JOIN = " LEFT JOIN message_sort_keys k ON k.blob_key = m.blob_key"
_MISSING = "CASE WHEN k.blob_key IS NULL THEN 1 ELSE 0 END"


def order_by(engine: str, criteria: Sequence[tuple[str, bool]]) -> tuple[str, bool]:
    """(ORDER BY list, whether the keys table is needed) for ``[(key, reverse), ...]``."""
    parts: list[str] = []
    keys = False
    for name, reverse in criteria:
        column = _COLUMNS.get(name.lower())
        if column is None:
            raise InvalidSearch(f"unsupported sort key {name!r}")
        if column.startswith("k."):
            keys = True
            if engine == "postgres":
                column += ' COLLATE "C"'
        parts.append(column + (" DESC" if reverse else ""))
    return ", ".join(parts + ["m.uid"]), keys


def sort(txn: Any, mailbox_id: int, query: Search | tuple[Any, ...], criteria: Sequence[tuple[str, bool]],
         user: str | None = None, complete: bool = False, cache: ResultCache | None = None) -> list[int] | None:
    """UIDs matching ``query`` in SORT order; None when some keys are still missing (unless
    ``complete``: then those messages sort as if their keys were empty)."""
    require_owned(txn, mailbox_id, user)
    if not criteria:
        raise InvalidSearch("SORT needs at least one key")
    order, keys = order_by(txn.engine.name, criteria)
    key = cache.key(txn, mailbox_id, ("sort", tuple(criteria), query)) if cache is not None else None
    if cache is not None and key is not None and key in cache.results:
        return list(cache.results[key])
    found = _sorted(txn, mailbox_id, query, order, keys, complete)
    if cache is not None and key is not None and found is not None:
        cache.put(key, found)
    return found


def _sorted(txn: Any, mailbox_id: int, query: Search | tuple[Any, ...], order: str, keys: bool,
            complete: bool) -> list[int] | None:
    cond, params = compile_condition(query, txn.engine.name, int(mailbox_id), txn.now)
    if not keys:
        return [int(r[0]) for r in txn.query(f"SELECT m.uid FROM messages m WHERE m.mailbox_id = ? AND ({cond})"
                                             f" ORDER BY {order}", [int(mailbox_id), *params])]
    rows = txn.query(f"SELECT m.uid, {_MISSING} FROM messages m{_JOIN} WHERE m.mailbox_id = ? AND ({cond})"
                     f" ORDER BY {order}", [int(mailbox_id), *params])
    if not complete and any(r[1] for r in rows):
        return None
    return [int(r[0]) for r in rows]


def thread_rows(txn: Any, mailbox_id: int, query: Search | tuple[Any, ...], user: str | None = None,
                complete: bool = False) -> list[threading.ThreadRow] | None:
    """The THREAD input of the messages matching ``query``, in UID order (None: keys missing)."""
    require_owned(txn, mailbox_id, user)
    cond, params = compile_condition(query, txn.engine.name, int(mailbox_id), txn.now)
    rows = txn.query(f"SELECT m.uid, m.sent_date, k.subject, k.reply, k.message_id, k.refs, {_MISSING}"
                     f" FROM messages m{_JOIN} WHERE m.mailbox_id = ? AND ({cond}) ORDER BY m.uid",
                     [int(mailbox_id), *params])
    if not complete and any(r[6] for r in rows):
        return None
    return [threading.ThreadRow(int(r[0]), int(r[1]), r[2] or "", bool(r[3]), r[4] or "",
                                tuple((r[5] or "").split())) for r in rows]


def thread(txn: Any, mailbox_id: int, query: Search | tuple[Any, ...], algorithm: str, user: str | None = None,
           complete: bool = False, cache: ResultCache | None = None) -> list[int] | None:
    """THREAD (``"references"`` or ``"orderedsubject"``) of the matching messages, ``flatten``ed."""
    algorithms = {"references": threading.references, "orderedsubject": threading.ordered_subject}
    run = algorithms.get(algorithm.lower())
    if run is None:
        raise InvalidSearch(f"unsupported threading algorithm {algorithm!r}")
    key = cache.key(txn, mailbox_id, ("thread", algorithm.lower(), query)) if cache is not None else None
    if cache is not None and key is not None and key in cache.results:
        flat: list[int] = cache.results[key]
        return flat
    rows = thread_rows(txn, mailbox_id, query, user, complete)
    if rows is None:
        return None
    flat = threading.flatten(run(rows))
    if cache is not None and key is not None:
        cache.put(key, flat)
    return flat


class ResultCache:
    """SORT and THREAD results of recent mailbox states (Dovecot keeps sort and thread indexes for
    the same reason).

    The key holds the mailbox's ``uidvalidity``, ``uidnext``, ``messages`` and ``highestmodseq``: every append,
    expunge and flag change moves one of them, and the thread keys of a message never change, so
    a hit is exactly what threading again would give. Queries that depend on the clock
    (YOUNGER/OLDER) are not cached. Shared by the database threads: plain dict operations only.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.results: dict[tuple[Any, ...], Any] = {}

    def key(self, txn: Any, mailbox_id: int, what: tuple[Any, ...]) -> tuple[Any, ...] | None:
        text = repr(what)
        if "'younger'" in text or "'older'" in text:
            return None
        row = txn.query_one("SELECT uidvalidity, uidnext, messages, highestmodseq FROM mailboxes WHERE id = ?",
                            (int(mailbox_id),))
        return None if row is None else (int(mailbox_id), *map(int, row), text)

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        while len(self.results) >= self.size:
            self.results.pop(next(iter(self.results)), None)
        self.results[key] = value
