"""Shares in the database: public links (hashed tokens) and user-to-user grants."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from tau.dav.lockdb import delete_held_within
from tau.files.store import COLS, Node, _node, path_of
from tau.storage.database import Txn


@dataclass(frozen=True)
class Share:
    id: int
    owner_id: int
    node_id: int
    grantee_id: int | None
    permission: str
    password_hash: str | None
    can_upload: bool
    expires_at: int | None
    created_at: int

    def expired(self, at: float) -> bool:
        return self.expires_at is not None and at >= self.expires_at


SHARE_COLS = ("id, owner_id, node_id, grantee_id, permission, password_hash, can_upload, expires_at,"
              " created_at")


def _share(row: tuple[Any, ...] | None) -> Share | None:
    if row is None:
        return None
    return Share(int(row[0]), int(row[1]), int(row[2]), None if row[3] is None else int(row[3]), row[4], row[5],
                 bool(row[6]), None if row[7] is None else int(row[7]), int(row[8]))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_link(txn: Txn, owner_id: int, node_id: int, token: str, password_hash: str | None,
                can_upload: bool, expires_at: int | None) -> Share:
    share_id = txn.scalar("INSERT INTO file_shares (owner_id, node_id, token_hash, permission, password_hash,"
                          " can_upload, expires_at, created_at) VALUES (?, ?, ?, 'read', ?, ?, ?, ?) RETURNING id",
                          (owner_id, node_id, token_hash(token), password_hash, int(can_upload), expires_at,
                           int(txn.now)))
    share = get_share(txn, int(share_id))
    assert share is not None
    return share


def grant(txn: Txn, owner_id: int, node_id: int, grantee_id: int, permission: str) -> Share:
    if permission != "write":
        _drop_locks(txn, node_id, grantee_id)
    txn.execute("INSERT INTO file_shares (owner_id, node_id, grantee_id, permission, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id, grantee_id) DO UPDATE SET permission ="
                " excluded.permission", (owner_id, node_id, grantee_id, permission, int(txn.now)))
    row = txn.query_one(f"SELECT {SHARE_COLS} FROM file_shares WHERE node_id = ? AND grantee_id = ?",
                        (node_id, grantee_id))
    share = _share(row)
    assert share is not None
    return share


def get_share(txn: Txn, share_id: int) -> Share | None:
    return _share(txn.query_one(f"SELECT {SHARE_COLS} FROM file_shares WHERE id = ?", (share_id,)))


def by_token(txn: Txn, token: str) -> tuple[Share, Node] | None:
    share = _share(txn.query_one(f"SELECT {SHARE_COLS} FROM file_shares WHERE token_hash = ?",
                                 (token_hash(token),)))
    if share is None:
        return None
    node = _node(txn, txn.query_one(f"SELECT {COLS} FROM file_nodes WHERE id = ?", (share.node_id,)))
    return (share, node) if node is not None else None


def list_owned(txn: Txn, owner_id: int) -> list[Share]:
    rows = txn.query(f"SELECT {SHARE_COLS} FROM file_shares WHERE owner_id = ? ORDER BY id", (owner_id,))
    return [s for s in map(_share, rows) if s is not None]


def revoke(txn: Txn, owner_id: int, share_id: int) -> bool:
    """Delete a share; the DAV locks its recipient took through it go with it."""
    share = get_share(txn, share_id)
    if share is None or share.owner_id != owner_id:
        return False
    txn.execute("DELETE FROM file_shares WHERE id = ? AND owner_id = ?", (share_id, owner_id))
    if share.grantee_id is not None:
        _drop_locks(txn, share.node_id, share.grantee_id)
    return True


DAV_TREE = "/dav/files"  # the lock tree of the files mount (tau.files.service.DAV_PREFIX)


def _drop_locks(txn: Txn, node_id: int, grantee_id: int) -> None:
    """Remove the grantee's locks on and below a shared node (keys are the owner's canonical paths).

    A recipient who may no longer write must not keep the owner locked out. Locks the recipient
    holds through another share of an enclosing folder go too: they can take them again.
    """
    node = _node(txn, txn.query_one(f"SELECT {COLS} FROM file_nodes WHERE id = ?", (node_id,)))
    grantee = txn.scalar("SELECT address FROM users WHERE id = ?", (grantee_id,))
    if node is None or grantee is None:
        return
    owner = txn.scalar("SELECT address FROM users WHERE id = ?", (node.user_id,))
    delete_held_within(txn, DAV_TREE, (str(owner), *path_of(txn, node)), str(grantee))


def received(txn: Txn, grantee_id: int) -> list[tuple[str, Share, Node, str]]:
    """Shares granted to ``grantee_id``: (name in Shared/, share, node, owner address).

    Names are the shared node's name; a clash gets the owner's local part appended.
    """
    rows = txn.query(f"SELECT s.id, u.address, n.{COLS.replace(', ', ', n.')} FROM file_shares s"
                     " JOIN file_nodes n ON n.id = s.node_id JOIN users u ON u.id = s.owner_id"
                     " WHERE s.grantee_id = ? ORDER BY s.id", (grantee_id,))
    out: list[tuple[str, Share, Node, str]] = []
    seen: set[str] = set()
    for row in rows:
        share = get_share(txn, int(row[0]))
        node = _node(txn, row[2:])
        if share is None or node is None:
            continue
        name = node.name or row[1].split("@")[0]
        if name in seen:
            name = f"{name} ({row[1].split('@')[0]})"
        seen.add(name)
        out.append((name, share, node, row[1]))
    return out
