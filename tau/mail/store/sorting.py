"""SORT (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO) and THREAD reads: one query each.

SORT on ARRIVAL, DATE and SIZE only is one ``SELECT m.uid ... ORDER BY`` over the SEARCH condition
(``search.compile_condition``; DATE has an index, so a whole-mailbox sort reads it in order). The
text keys (SUBJECT, FROM, TO, CC, DISPLAYFROM, DISPLAYTO) are sealed in ``mail_content.sort``
(encryption at rest): those sorts read the matching rows with their keys, decrypt and sort in
Python, comparing by code point as before. Every sort ends with the UID, so equal keys keep
mailbox order (RFC 5256 §3) whatever REVERSE says. THREAD reads the keys of the matching
messages (their keyed hashes, ``threadkeys``) in one query and threads them in Python
(``threading``). The store seals a mailbox's plaintext rows (from before encryption at rest)
before it sorts or threads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tau.mail.store import results, sealed, threading, threadkeys
from tau.mail.store.api import Search
from tau.mail.store.mailboxes import require_owned
from tau.mail.store.search import InvalidSearch, compile_condition
from tau.mail.store.sortkeys import SortKeys
from tau.mail.store.textsearch import resolve

_COLUMNS = {"arrival": "m.internal_date", "date": "m.sent_date", "size": "m.size"}
#: sort keys read from the sealed ``mail_content.sort`` (index into ``_key_values``)
_SEALED = {"subject": 0, "from": 1, "to": 2, "cc": 3, "displayfrom": 4, "displayto": 5}
_JOIN = " LEFT JOIN mail_content c ON c.user_id = ? AND c.blob_key = m.blob_key"


def order_by(engine: str, criteria: Sequence[tuple[str, bool]]) -> tuple[str, bool]:
    """(ORDER BY list, whether sealed keys are needed) for ``[(key, reverse), ...]``."""
    parts: list[str] = []
    keys = False
    for name, reverse in criteria:
        column = _COLUMNS.get(name.lower())
        if column is None and name.lower() not in _SEALED:
            raise InvalidSearch(f"unsupported sort key {name!r}")
        if column is None:
            keys = True
            continue
        parts.append(column + (" DESC" if reverse else ""))
    return ", ".join(parts + ["m.uid"]), keys


def sort(txn: Any, keyring: Any, mailbox_id: int, query: Search | tuple[Any, ...],
         criteria: Sequence[tuple[str, bool]], user: str | None = None, complete: bool = True,
         cache: ResultCache | None = None, to_save: list[tuple[Any, ...]] | None = None) -> list[int]:
    """UIDs matching ``query`` in SORT order. A sort on sealed keys is also looked up in, or
    appended to ``to_save`` for, the stored results (``results``; see ``thread``)."""
    require_owned(txn, mailbox_id, user)
    if not criteria:
        raise InvalidSearch("SORT needs at least one key")
    order, keys = order_by(txn.engine.name, criteria)
    key = cache.key(txn, mailbox_id, ("sort", tuple(criteria), query)) if cache is not None else None
    if cache is not None and key is not None and key in cache.results:
        return list(cache.results[key])
    tree = resolve(txn, keyring, int(mailbox_id), query)
    if keys:
        named = ",".join(("-" if reverse else "") + name.lower() for name, reverse in criteria)
        uids, stored, save = _stored(txn, keyring, mailbox_id, tree, "sort:" + named)
        found = stored if stored is not None else _sorted(txn, keyring, mailbox_id, tree, criteria, order, keys)
        # stored only when it sorts exactly the UIDs hashed (none arrived or went in between)
        if stored is None and save is not None and to_save is not None and sorted(found) == uids:
            to_save.append((*save, found))
    else:
        found = _sorted(txn, keyring, mailbox_id, tree, criteria, order, keys)
    if cache is not None and key is not None:
        cache.put(key, found)
    return found


def _stored(txn: Any, keyring: Any, mailbox_id: int, tree: Any,
            kind: str) -> tuple[list[int], list[int] | None, tuple[Any, ...] | None]:
    """(matching UIDs, the stored result for them or None, what ``results.save`` needs before
    the values, or None when the set is too small to store or has nothing sealed)."""
    cond, params = compile_condition(tree, txn.engine.name, int(mailbox_id), txn.now)
    uids = [int(r[0]) for r in txn.query(f"SELECT m.uid FROM messages m WHERE m.mailbox_id = ? AND ({cond})"
                                         f" ORDER BY m.uid", [int(mailbox_id), *params])]
    uk = sealed.box_key(txn, keyring, mailbox_id) if len(uids) >= results.MIN_MESSAGES else None
    if uk is None:
        return uids, None, None
    uidvalidity = int(txn.scalar("SELECT uidvalidity FROM mailboxes WHERE id = ?", (int(mailbox_id),)))
    digest = results.digest(kind, uidvalidity, uids)
    return uids, results.load(txn, uk, mailbox_id, kind, digest), (uk, int(mailbox_id), kind, digest)


def _sealed_rows(txn: Any, keyring: Any, mailbox_id: int, tree: Any, columns: str) -> list[tuple[Any, ...]]:
    """(``columns``..., blob_key, sealed sort keys) of the matching messages in UID order."""
    cond, params = compile_condition(tree, txn.engine.name, int(mailbox_id), txn.now)
    uk = sealed.box_key(txn, keyring, mailbox_id)
    rows = txn.query(f"SELECT {columns}, m.blob_key, c.sort FROM messages m{_JOIN}"
                     f" WHERE m.mailbox_id = ? AND ({cond}) ORDER BY m.uid",
                     [uk.user_id if uk else 0, int(mailbox_id), *params])
    return [(*r[:-2], _keys(uk, r[-2], r[-1])) for r in rows]


def _keys(uk: Any, blob_key: str, value: Any) -> SortKeys:
    if value is None or uk is None:
        return _EMPTY
    return sealed.sort_keys(sealed.open_content(uk, "sort", blob_key, value))


_EMPTY = SortKeys("", False, "", "", "", "", "", "", "")


def _key_values(k: SortKeys) -> tuple[str, ...]:
    return (k.subject, k.from_mbox, k.to_mbox, k.cc_mbox, k.display_from, k.display_to)


def _sorted(txn: Any, keyring: Any, mailbox_id: int, tree: Any, criteria: Sequence[tuple[str, bool]],
            order: str, keys: bool) -> list[int]:
    if not keys:
        cond, params = compile_condition(tree, txn.engine.name, int(mailbox_id), txn.now)
        return [int(r[0]) for r in txn.query(f"SELECT m.uid FROM messages m WHERE m.mailbox_id = ? AND ({cond})"
                                             f" ORDER BY {order}", [int(mailbox_id), *params])]
    # text keys are sealed: sorted here, after decrypting (stable sorts from the last key to the
    # first; equal keys keep UID order whatever REVERSE says, RFC 5256 section 3)
    rows = _sealed_rows(txn, keyring, mailbox_id, tree, "m.uid, m.internal_date, m.sent_date, m.size")
    for name, reverse in reversed(list(criteria)):
        rows.sort(key=_sort_key(name.lower()), reverse=reverse)
    return [int(r[0]) for r in rows]


def _sort_key(name: str) -> Callable[[tuple[Any, ...]], Any]:
    """The key of one criterion on (uid, internal_date, sent_date, size, SortKeys) rows."""
    plain = {"arrival": 1, "date": 2, "size": 3}
    if name in plain:
        index = plain[name]
        return lambda r: int(r[index])
    slot = _SEALED[name]
    return lambda r: _key_values(r[4])[slot]


def thread_rows(txn: Any, keyring: Any, mailbox_id: int, query: Search | tuple[Any, ...], user: str | None = None,
                complete: bool = True) -> list[threading.ThreadRow]:
    """The THREAD input of the messages matching ``query``, in UID order."""
    require_owned(txn, mailbox_id, user)
    return _thread_rows(txn, keyring, mailbox_id, resolve(txn, keyring, int(mailbox_id), query))


def _thread_rows(txn: Any, keyring: Any, mailbox_id: int, tree: Any) -> list[threading.ThreadRow]:
    """The keyed hashes of ``mail_thread_keys`` (a narrow row per content; nothing to decrypt),
    or, for a content stored before that table and not reached by the at-rest converter yet, the
    same computed from its sealed sort keys."""
    cond, params = compile_condition(tree, txn.engine.name, int(mailbox_id), txn.now)
    uk = sealed.box_key(txn, keyring, mailbox_id)
    rows = txn.query(f"SELECT m.uid, m.sent_date, t.keys, c.id FROM messages m{_JOIN}"
                     f" LEFT JOIN mail_thread_keys t ON t.content_id = c.id WHERE m.mailbox_id = ? AND ({cond})"
                     f" ORDER BY m.uid", [uk.user_id if uk else 0, int(mailbox_id), *params])
    missing = {int(r[3]) for r in rows if r[2] is None and r[3] is not None}
    computed = _computed_thread_keys(txn, uk, missing) if missing and uk is not None else {}
    make, unpack = threading.ThreadRow, threadkeys.unpack
    out = []
    for uid, date, packed, content_id in rows:
        if packed is None:
            packed = computed.get(content_id, threadkeys.NONE)
        subject, reply, message_id, refs = unpack(packed)
        out.append(make(uid, date, subject, reply, message_id, refs))
    return out


def _computed_thread_keys(txn: Any, uk: Any, content_ids: set[int]) -> dict[int, bytes]:
    """``threadkeys.pack`` of contents stored before ``mail_thread_keys`` (the at-rest converter
    has not reached them yet), from their sealed sort keys: a few queries of 500."""
    out: dict[int, bytes] = {}
    ordered = sorted(content_ids)
    for i in range(0, len(ordered), 500):
        part = ordered[i:i + 500]
        for content_id, blob_key, value in txn.query(
                f"SELECT id, blob_key, sort FROM mail_content WHERE id IN ({', '.join('?' * len(part))})", part):
            out[int(content_id)] = threadkeys.pack(uk, _keys(uk, blob_key, value))
    return out


_ALGORITHMS = {"references": threading.references, "orderedsubject": threading.ordered_subject}


def thread(txn: Any, keyring: Any, mailbox_id: int, query: Search | tuple[Any, ...], algorithm: str,
           user: str | None = None, complete: bool = True, cache: ResultCache | None = None,
           to_save: list[tuple[Any, ...]] | None = None) -> list[int]:
    """THREAD (``"references"`` or ``"orderedsubject"``) of the matching messages, ``flatten``ed:
    from ``cache``, else from the stored result for the same UIDs (``results``), else threaded
    here; then what ``results.save`` takes is appended to ``to_save`` for the caller to store
    (this transaction is read-only)."""
    name = algorithm.lower()
    run = _ALGORITHMS.get(name)
    if run is None:
        raise InvalidSearch(f"unsupported threading algorithm {algorithm!r}")
    key = cache.key(txn, mailbox_id, ("thread", name, query)) if cache is not None else None
    if cache is not None and key is not None and key in cache.results:
        flat: list[int] = cache.results[key]
        return flat
    require_owned(txn, mailbox_id, user)
    tree = resolve(txn, keyring, int(mailbox_id), query)
    uids, stored, save = _stored(txn, keyring, mailbox_id, tree, f"thread:{name}")
    if stored is not None:
        flat = stored
    else:
        rows = _thread_rows(txn, keyring, mailbox_id, tree)
        flat = threading.flatten(run(rows))
        if save is not None and to_save is not None and [r.uid for r in rows] == uids:
            to_save.append((*save, flat))
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
