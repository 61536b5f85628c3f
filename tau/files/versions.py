"""Restoring an earlier version of a file (the rows are :mod:`tau.files.versionstore`'s).

As in Nextcloud, restoring is itself an overwrite: the current content becomes the newest version
and the chosen one becomes current, so a restore can be undone. The blob references move with the
rows; only the change in size touches the quota.
"""

from __future__ import annotations

from typing import Any

from tau.files import store, versionstore
from tau.files.blobrefs import Collector
from tau.files.store import FilesError, Node
from tau.storage.database import Txn


def restore(txn: Txn, blobs: Any, node_id: int, version_id: int, default_limit: int, keep: int) -> Node:
    node = store.get_node(txn, node_id)
    seq = store.bump(txn, node.user_id) if node is not None else 0
    node = store.get_node(txn, node_id)  # again, under the owner's row lock
    version = versionstore.get(txn, node_id, version_id)
    if node is None or node.is_folder or version is None:
        raise FilesError(404, "not_found", "no such version")
    delta = version.size - node.size
    store._check_quota(txn, node.user_id, delta, default_limit)
    collector = Collector(blobs)
    versionstore.delete(txn, version.id)  # its reference now belongs to the node
    t = int(txn.now)
    etag = store.file_etag(version.blob_key, t)
    versionstore.make_current(txn, node.id, version, etag, t)
    versionstore.keep(txn, collector, node, max(keep, 1))  # the current content: the newest version
    store._add_usage(txn, node.user_id, delta)
    if node.parent_id is not None:
        store.log_change(txn, node.user_id, seq, node.parent_id, node.name)
    collector.collect(txn)
    return node._replace(size=version.size, etag=etag, blob_key=version.blob_key,
                         content_type=version.content_type, modified_at=t)
