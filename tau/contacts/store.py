"""Address books, shares and settings: transaction functions ``fn(txn, ...)`` (no protocol here).

Every user gets a default address book ``contacts`` ("Contacts") and a ``collected`` one
("Collected": people they mailed) on first use. ``access`` answers "what may this user do with
this address book" in one place: the owner everything, a share grantee read or read-write (the
book then also appears in the grantee's home under the share's name), anyone else nothing.

A book's display name and description are sealed at rest under its owner's key (``sealed``,
bound to owner and name); its name is the URL segment and stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tau.atrest.sealed import SealedTable
from tau.dav.collection_store import CollectionTable, share_alias, valid_name
from tau.dav.collection_store import user_id as user_id  # the domain's own name for it
from tau.dav.collections import CollectionError
from tau.storage.database import Txn

DEFAULT, COLLECTED = "contacts", "collected"
DEFAULTS = ((DEFAULT, "Contacts", "contacts"), (COLLECTED, "Collected", "collected"))
_COLS = ("b.id, b.user_id, u.address, b.name, b.kind, b.display_name, b.description, b.sync_seq, b.pruned_seq,"
         " b.created_at, b.modified_at, b.sealed")
TABLE = CollectionTable("ab_books", "ab_props", "ab_shares", "book_id")


class ContactsError(CollectionError):
    """An address book or card refused (the DAV collection error of this domain)."""


@dataclass(frozen=True)
class BookRow:
    id: int
    user_id: int
    owner: str
    name: str
    kind: str
    display_name: str
    description: str
    sync_seq: int
    pruned_seq: int
    created_at: int
    modified_at: int


@dataclass(frozen=True)
class Access:
    """An address book as one user sees it: under which name, and whether they may write."""

    book: BookRow
    name: str
    writable: bool
    owned: bool


_sealed = TABLE.seal


def _row(txn: Txn, r: Any) -> BookRow:
    display, description = TABLE.labels(txn, int(r[1]), r[3], r[5], r[6], r[11])
    return BookRow(int(r[0]), int(r[1]), r[2], r[3], r[4], display, description, int(r[7]), int(r[8]), int(r[9]),
                   int(r[10]))


def ensure_defaults(txn: Txn, uid: int) -> None:
    existing = {r[0] for r in txn.query("SELECT name FROM ab_books WHERE user_id = ? AND kind <> 'book'", (uid,))}
    now = int(txn.now)
    for name, label, kind in DEFAULTS:
        if name not in existing:
            txn.execute("INSERT INTO ab_books (user_id, name, kind, created_at, modified_at, sealed, kv)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, name) DO NOTHING",
                        (uid, name, kind, now, now, *_sealed(txn, uid, name, label)))


def get(txn: Txn, owner_id: int, name: str) -> BookRow | None:
    r = txn.query_one(f"SELECT {_COLS} FROM ab_books b JOIN users u ON u.id = b.user_id"
                      " WHERE b.user_id = ? AND b.name = ?", (owner_id, name))
    return _row(txn, r) if r else None


def by_id(txn: Txn, book_id: int) -> BookRow | None:
    r = txn.query_one(f"SELECT {_COLS} FROM ab_books b JOIN users u ON u.id = b.user_id WHERE b.id = ?", (book_id,))
    return _row(txn, r) if r else None


def by_kind(txn: Txn, owner_id: int, kind: str) -> BookRow | None:
    r = txn.query_one(f"SELECT {_COLS} FROM ab_books b JOIN users u ON u.id = b.user_id"
                      " WHERE b.user_id = ? AND b.kind = ? ORDER BY b.id", (owner_id, kind))
    return _row(txn, r) if r else None


def owned(txn: Txn, owner_id: int) -> list[BookRow]:
    return [_row(txn, r) for r in txn.query(f"SELECT {_COLS} FROM ab_books b JOIN users u ON u.id = b.user_id"
                                       " WHERE b.user_id = ? ORDER BY b.id", (owner_id,))]


_SHARED = (f"SELECT {_COLS}, s.name, s.permission FROM ab_shares s JOIN ab_books b ON b.id = s.book_id"
           " JOIN users u ON u.id = b.user_id")


def visible(txn: Txn, viewer_id: int) -> list[Access]:
    out = [Access(b, b.name, True, True) for b in owned(txn, viewer_id)]
    for r in txn.query(_SHARED + " WHERE s.grantee_id = ? ORDER BY s.id", (viewer_id,)):
        out.append(Access(_row(txn, r), r[12], r[13] == "write", False))
    return out


def access(txn: Txn, viewer_id: int, owner_id: int, name: str) -> Access | None:
    """``owner``'s address book ``name`` as ``viewer`` may use it (own name, or a share's alias)."""
    if viewer_id == owner_id:
        book = get(txn, owner_id, name)
        if book is not None:
            return Access(book, book.name, True, True)
        r = txn.query_one(_SHARED + " WHERE s.grantee_id = ? AND s.name = ?", (viewer_id, name))
    else:
        r = txn.query_one(_SHARED + " WHERE s.grantee_id = ? AND b.user_id = ? AND b.name = ?",
                          (viewer_id, owner_id, name))
    return Access(_row(txn, r), r[12], r[13] == "write", False) if r else None


def create(txn: Txn, owner_id: int, name: str, display_name: str = "", description: str = "") -> BookRow:
    """Extended MKCOL (RFC 5689) with a CARDDAV:addressbook resource type."""
    if not valid_name(name):
        raise ContactsError(400, "invalid_name", "invalid address book name")
    ensure_defaults(txn, owner_id)
    if get(txn, owner_id, name) is not None or txn.scalar(
            "SELECT 1 FROM ab_shares WHERE grantee_id = ? AND name = ?", (owner_id, name)):
        raise ContactsError(405, "exists", "a resource exists at this URL")
    now = int(txn.now)
    txn.execute("INSERT INTO ab_books (user_id, name, created_at, modified_at, sealed, kv) VALUES (?, ?, ?, ?, ?, ?)",
                (owner_id, name, now, now, *_sealed(txn, owner_id, name, display_name or name, description)))
    return get(txn, owner_id, name)  # type: ignore[return-value]


def update(txn: Txn, book_id: int, display_name: str | None, description: str | None) -> None:
    book = by_id(txn, book_id)
    if book is None or (display_name is None and description is None):
        return
    TABLE.set_labels(txn, book_id, book.user_id, book.name, book.display_name if display_name is None else display_name,
                     book.description if description is None else description)


def delete(txn: Txn, book_id: int) -> None:
    """Cards, index rows, tokens, changes, props and shares go with it (ON DELETE CASCADE)."""
    txn.execute("DELETE FROM ab_index WHERE book_id = ?", (book_id,))
    txn.execute("DELETE FROM ab_tokens WHERE book_id = ?", (book_id,))
    txn.execute("DELETE FROM ab_books WHERE id = ?", (book_id,))


props = TABLE.props
set_props = TABLE.set_props


# -- sharing --------------------------------------------------------------------------------------

def share(txn: Txn, owner_id: int, name: str, grantee: str, permission: str) -> str:
    """Share ``owner``'s address book with a local user; returns its name in the grantee's home."""
    if permission not in ("read", "write"):
        raise ContactsError(400, "invalid_permission", "permission is read or write")
    book = get(txn, owner_id, name)
    if book is None:
        raise ContactsError(404, "not_found", "no such address book")
    gid = user_id(txn, grantee)
    if gid is None or gid == owner_id:
        raise ContactsError(400, "invalid_grantee", "share with another local user")
    existing = txn.query_one("SELECT name FROM ab_shares WHERE book_id = ? AND grantee_id = ?", (book.id, gid))
    if existing:
        txn.execute("UPDATE ab_shares SET permission = ? WHERE book_id = ? AND grantee_id = ?",
                    (permission, book.id, gid))
        return str(existing[0])
    taken = {r[0] for r in txn.query("SELECT name FROM ab_books WHERE user_id = ? UNION"
                                     " SELECT name FROM ab_shares WHERE grantee_id = ?", (gid, gid))}
    alias = share_alias(name, book.owner, taken | {d[0] for d in DEFAULTS})
    txn.execute("INSERT INTO ab_shares (book_id, grantee_id, name, permission, created_at) VALUES (?, ?, ?, ?, ?)",
                (book.id, gid, alias, permission, int(txn.now)))
    return alias


def unshare(txn: Txn, owner_id: int, name: str, grantee: str) -> bool:
    book = get(txn, owner_id, name)
    gid = user_id(txn, grantee)
    if book is None or gid is None:
        return False
    txn.execute("DELETE FROM ab_shares WHERE book_id = ? AND grantee_id = ?", (book.id, gid))
    return txn.rowcount > 0


def drop_share(txn: Txn, book_id: int, grantee_id: int) -> None:
    txn.execute("DELETE FROM ab_shares WHERE book_id = ? AND grantee_id = ?", (book_id, grantee_id))


shares_of = TABLE.shares_of


# -- settings -------------------------------------------------------------------------------------

def collects(txn: Txn, uid: int) -> bool:
    value = txn.scalar("SELECT collect FROM ab_settings WHERE user_id = ?", (uid,))
    return value is None or bool(value)


def set_collect(txn: Txn, uid: int, collect: bool) -> None:
    txn.execute("INSERT INTO ab_settings (user_id, collect) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET collect = excluded.collect", (uid, 1 if collect else 0))


def atrest_tables() -> list[SealedTable]:
    return [TABLE.atrest_table()]
