"""Issue 16: sealed names are bound to their row — a ciphertext moved to another row or user does
not open — and a name's lookup hash, not the name, is what the database compares."""

from __future__ import annotations

from typing import Any

import pytest

from tau.atrest.keyring import SealError
from tau.files import store as files
from tests.support.harness import add_user


def _two_files(txn: Any, uid: int) -> tuple[int, int, int]:
    root = files.ensure_root(txn, uid)
    a = files.make_folder(txn, root, "alpha plans")
    b = files.make_folder(txn, root, "beta plans")
    return root.id, a.id, b.id


def test_a_sealed_name_swapped_onto_another_row_does_not_open(registry: Any) -> None:
    db = registry.db.sync
    uid = add_user(registry, "alice@example.test", fast_hash=True).id
    root, a, b = db.run("mk", _two_files, uid)
    db.run("swap", lambda txn: txn.execute(
        "UPDATE file_nodes SET name_s = (SELECT name_s FROM file_nodes WHERE id = ?) WHERE id = ?", (b, a)))
    with pytest.raises(SealError):
        db.run("list", files.children, root)


def test_a_sealed_name_moved_to_another_user_does_not_open(registry: Any) -> None:
    db = registry.db.sync
    alice = add_user(registry, "alice@example.test", fast_hash=True).id
    bob = add_user(registry, "bob@example.test", fast_hash=True).id
    _, a, _ = db.run("mk", _two_files, alice)
    root_b, b, _ = db.run("mk", _two_files, bob)
    # bob's row gets alice's sealed name and lookup: same folder-independent bytes, wrong key
    db.run("steal", lambda txn: txn.execute(
        "UPDATE file_nodes SET name = (SELECT name FROM file_nodes WHERE id = ?),"
        " name_s = (SELECT name_s FROM file_nodes WHERE id = ?) WHERE id = ?", (a, a, b)))
    with pytest.raises(SealError):
        db.run("list", files.children, root_b)


def test_the_database_compares_lookup_hashes_not_names(registry: Any) -> None:
    db = registry.db.sync
    uid = add_user(registry, "alice@example.test", fast_hash=True).id
    root, a, _ = db.run("mk", _two_files, uid)
    stored = db.run("raw", lambda txn: txn.query("SELECT name FROM file_nodes WHERE parent_id = ?", (root,)))
    assert all(len(r[0]) == 64 and "plans" not in r[0] for r in stored)
    assert db.run("get", files.child, root, "alpha plans").id == a
    assert db.run("get", files.child, root, "Alpha plans") is None  # paths stay case-sensitive
    with pytest.raises(files.FilesError):
        db.run("dup", lambda txn: files.make_folder(txn, files.get_node(txn, root), "alpha plans"))
