"""Resolve a path in a user's file space in one transaction: own tree, or ``Shared/`` grants.

``/dav/files/USER/a/b`` and ``/api/files?path=/a/b`` both land here. The result says which
node (if any) the path names, its parent, whose tree it is in, whether the caller may write,
the canonical path in the owner's tree (lock keys), and the owner's usage and quota.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tau.auth import accounts
from tau.files import listing, sharestore, store, trashstore
from tau.files.store import Node
from tau.storage.database import Txn

SHARED = "Shared"


@dataclass
class Lookup:
    kind: str  # "node" | "shared_root" | "missing"
    node: Node | None
    parent: Node | None
    owner_id: int
    owner_address: str
    writable: bool
    canonical: list[str]  # path in the owner's tree
    used: int
    seq: int
    limit: int
    shares: list[tuple[str, sharestore.Share, Node, str]] = field(default_factory=list)
    share_parent: bool = False  # the node is a share root seen from Shared/ (no real parent)


def resolve(txn: Txn, user_id: int, address: str, rest: list[str], default_limit: int) -> Lookup:
    root = store.ensure_root(txn, user_id)
    if rest and rest[0] == SHARED:
        shares = sharestore.received(txn, user_id)
        if shares:
            return _in_share(txn, user_id, address, rest, shares, default_limit)
    parent, node = store.walk(txn, root, rest) if rest else (None, root)
    used, seq = store.usage(txn, user_id)
    limit = store.quota_limit(txn, user_id, default_limit)
    shares = sharestore.received(txn, user_id) if not rest else []
    kind = "node" if node is not None else "missing"
    return Lookup(kind, node, parent, user_id, address, True, [address, *rest], used, seq, limit, shares)


def _in_share(txn: Txn, user_id: int, address: str, rest: list[str],
              shares: list[tuple[str, sharestore.Share, Node, str]], default_limit: int) -> Lookup:
    used, seq = store.usage(txn, user_id)
    limit = store.quota_limit(txn, user_id, default_limit)
    if len(rest) == 1:
        return Lookup("shared_root", None, None, user_id, address, False, [address, SHARED], used, seq,
                      limit, shares)
    match = next(((s, n, owner) for name, s, n, owner in shares if name == rest[1]), None)
    if match is None:
        return Lookup("missing", None, None, user_id, address, False, [address, *rest], used, seq, limit)
    share, start, owner = match
    owner_used, owner_seq = store.usage(txn, share.owner_id)
    owner_limit = store.quota_limit(txn, share.owner_id, default_limit)
    base = [owner, *store.path_of(txn, start)]
    sub = rest[2:]
    parent, node = store.walk(txn, start, sub) if sub else (None, start)
    kind = "node" if node is not None else "missing"
    return Lookup(kind, node, parent, share.owner_id, owner, share.permission == "write", base + sub,
                  owner_used, owner_seq, owner_limit, share_parent=not sub)


def member_lookups(txn: Txn, folder_id: int) -> tuple[list[Node], dict[int, dict[str, str]]]:
    """A folder's members and their dead properties: the two queries behind PROPFIND Depth 1."""
    return store.children(txn, folder_id), store.child_props(txn, folder_id)


class SyncLimitTooSmall(Exception):
    """DAV:limit is below the number of members one change touched: no valid token can cut there."""


@dataclass
class SyncPage:
    """One sync-collection answer (RFC 6578): the token's seq, the members, and where it stopped.

    ``after``: the paths the next token still has to list (an initial sync cut short by DAV:limit
    continues after this path); None when the client knows every path.
    """

    seq: int
    items: list[tuple[list[str], Node | None]]
    after: tuple[str, ...] | None = None
    truncated: bool = False


def sync_state(txn: Txn, folder_id: int, since: int, infinite: bool, after: tuple[str, ...] | None = None,
               limit: int | None = None) -> SyncPage | None:
    """What changed below a folder since ``since`` (RFC 6578); None when ``since`` is older than the
    retained change log.

    The client's state is (``since``, ``after``): it knows the paths up to ``after`` (all of them
    when None, none when ``()``: the initial sync) as of seq ``since``. So the answer is the
    changes since ``since`` among known paths, then the current members it does not know yet,
    in path order. With ``limit`` the answer is cut (``truncated``): the changes at a seq boundary
    (every member first changed up to it, none after), the listing at a path.
    """
    folder = store.get_node(txn, folder_id)
    if folder is None:
        return SyncPage(0, [])
    if since and since < store.pruned_seq(txn, folder.user_id):
        return None
    _, seq = store.usage(txn, folder.user_id)
    folders = listing.folder_paths(txn, folder_id) if infinite else {folder_id: []}
    items: list[tuple[list[str], Node | None]] = []
    if after != ():
        changed = [(folders[p] + [name], p, name, first) for p, name, first in listing.changes_since(
            txn, list(folders), since)]
        if after is not None:
            changed = [c for c in changed if tuple(c[0]) <= after]
        if limit is not None and len(changed) > limit:
            boundary = changed[limit][3] - 1  # the list is in first-change order
            kept = [c for c in changed if c[3] <= boundary]
            if not kept:
                raise SyncLimitTooSmall(f"one change touched more than {limit} members")
            items = [(path, store.child(txn, p, name)) for path, p, name, _ in kept]
            return SyncPage(boundary, items, after, truncated=True)
        items = [(path, store.child(txn, p, name)) for path, p, name, _ in changed]
    if after is None:
        return SyncPage(seq, items)
    listed: list[tuple[list[str], Node | None]] = []
    for fid, base in folders.items():
        for kid in store.children(txn, fid):
            path = base + [kid.name]
            if tuple(path) > after:
                listed.append((path, kid))
    listed.sort(key=lambda item: item[0])
    room = None if limit is None else limit - len(items)
    if room is not None and len(listed) > room:
        listed = listed[:max(room, 0)]
        return SyncPage(seq, items + listed, tuple(listed[-1][0]) if listed else after, truncated=True)
    return SyncPage(seq, items + listed)


def locate(txn: Txn, user_id: int, node_id: int) -> tuple[Node, list[str], bool] | None:
    """A node by id as ``user_id`` sees it: (node, path in the caller's space, writable).

    None when the node is neither in the caller's tree nor below a share granted to them
    (the REST API then answers 404, whether or not the id exists).
    """
    node = store.get_node(txn, node_id)
    if node is None:
        return None
    if node.user_id == user_id:
        return None if trashstore.in_trash(txn, node) else (node, store.path_of(txn, node), True)
    chain: list[Node] = [node]
    while chain[-1].parent_id is not None:
        up = store.get_node(txn, chain[-1].parent_id)
        if up is None:
            break
        chain.append(up)
    for name, share, start, _owner in sharestore.received(txn, user_id):
        for depth, n in enumerate(chain):
            if n.id == start.id:
                below = [c.name for c in reversed(chain[:depth])]
                return node, [SHARED, name, *below], share.permission == "write"
    return None


def canonical(txn: Txn, node: Node) -> list[str]:
    """The lock key path of a node: its owner's address, then its path in the owner's tree."""
    owner = accounts.get_user_by_id(txn, node.user_id)
    return [str(owner.address if owner else None), *store.path_of(txn, node)]
