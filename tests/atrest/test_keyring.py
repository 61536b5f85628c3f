"""The key hierarchy of encryption at rest: what a sealed field resists, shredding, rotation."""

from __future__ import annotations

import pytest

from tau.atrest import store
from tau.atrest.keyring import Keyring, SealError, is_sealed, version_of
from tau.auth import accounts
from tau.keys import Keys
from tests.support.harness import add_user

MARKER = "zebra-marker-4711"


def _run(registry, fn, *args):
    return registry.db.sync.run("test", fn, *args)


def _user(registry, address="alice@example.test"):
    return add_user(registry, address, fast_hash=True).id


def test_a_sealed_field_opens_and_holds_no_plaintext(registry) -> None:
    uid = _user(registry)
    key = _run(registry, registry.keyring.for_user_txn, uid)
    sealed = key.seal("messages.subject|1", MARKER)
    assert MARKER.encode() not in sealed and is_sealed(sealed) and version_of(sealed) == 1
    assert key.open_text("messages.subject|1", sealed) == MARKER


def test_a_ciphertext_moved_to_another_row_or_user_does_not_open(registry) -> None:
    alice, bob = _user(registry), _user(registry, "bob@example.test")
    ka = _run(registry, registry.keyring.for_user_txn, alice)
    kb = _run(registry, registry.keyring.for_user_txn, bob)
    sealed = ka.seal("messages.subject|1", MARKER)
    with pytest.raises(SealError):
        ka.open("messages.subject|2", sealed)
    with pytest.raises(SealError):
        ka.open("messages.from|1", sealed)
    with pytest.raises(SealError):
        kb.open("messages.subject|1", sealed)
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(SealError):
        ka.open("messages.subject|1", bytes(tampered))


def test_keys_survive_a_restart_and_the_database_holds_them_wrapped(registry) -> None:
    uid = _user(registry)
    sealed = _run(registry, registry.keyring.for_user_txn, uid).seal("c|1", MARKER)
    fresh = Keyring(registry.keys)  # another process: nothing cached
    assert _run(registry, fresh.for_user_txn, uid).open_text("c|1", sealed) == MARKER
    rows = _run(registry, store.user_key_rows, uid)
    assert sorted((kind, version) for kind, version, *_ in rows) == [("data", 1), ("index", 0)]
    raw = _run(registry, registry.keyring.for_user_txn, uid).data_keys[1]
    assert all(raw not in wrapped for *_, wrapped, _retired in rows)


def test_another_secret_cannot_unwrap_the_keys(registry) -> None:
    uid = _user(registry)
    _run(registry, registry.keyring.for_user_txn, uid)
    stranger = Keyring(Keys(b"\x07" * 32))
    with pytest.raises(SealError):
        _run(registry, stranger.for_user_txn, uid)


def test_deleting_a_user_shreds_their_keys(registry) -> None:
    uid = _user(registry)
    _run(registry, registry.keyring.for_user_txn, uid)
    _run(registry, accounts.delete_user, "alice@example.test")
    assert _run(registry, store.user_key_rows, uid) == []


def test_lookups_are_stable_per_user_and_differ_between_users(registry) -> None:
    alice, bob = _user(registry), _user(registry, "bob@example.test")
    ka = _run(registry, registry.keyring.for_user_txn, alice)
    again = _run(registry, Keyring(registry.keys).for_user_txn, alice)
    kb = _run(registry, registry.keyring.for_user_txn, bob)
    assert ka.lookup("path", "/Documents") == again.lookup("path", "/Documents")
    assert ka.lookup("path", "/Documents") != kb.lookup("path", "/Documents")
    assert ka.lookup("path", "/Documents") != ka.lookup("name", "/Documents")
    assert ka.token("body", "zebra") == again.token("body", "zebra") != kb.token("body", "zebra")


def test_rotation_rewraps_every_key_and_gives_a_new_data_key(registry) -> None:
    alice, bob = _user(registry), _user(registry, "bob@example.test")
    keyring = registry.keyring
    old = _run(registry, keyring.for_user_txn, alice)
    sealed = old.seal("c|1", MARKER)
    lookup = old.lookup("path", "/a")
    _run(registry, keyring.for_user_txn, bob)
    first_epoch = _run(registry, store.latest_epoch)[0]
    epoch, users = _run(registry, keyring.rotate_txn)
    assert epoch > first_epoch and users == 2
    keyring.evict()
    new = _run(registry, Keyring(registry.keys).for_user_txn, alice)
    assert new.version == 2 and version_of(new.seal("c|2", "x")) == 2
    assert new.open_text("c|1", sealed) == MARKER       # old rows open until re-sealed
    assert new.lookup("path", "/a") == lookup            # index key kept: lookups need no rebuild
    rows = _run(registry, store.user_key_rows, alice)
    assert {row[2] for row in rows} == {epoch}           # every key wrapped under the new epoch
    assert [(r[1], r[4] is not None) for r in rows if r[0] == "data"] == [(1, True), (2, False)]


def test_a_retired_epoch_is_dropped_once_no_key_uses_it(registry) -> None:
    uid = _user(registry)
    _run(registry, registry.keyring.for_user_txn, uid)
    first = _run(registry, store.latest_epoch)[0]
    _run(registry, registry.keyring.rotate_txn)
    assert _run(registry, registry.keyring.rewrap_stale_txn) == 0
    epochs = registry.db.sync.run("t", lambda txn: [r[0] for r in txn.query("SELECT id FROM atrest_epochs")])
    assert first not in epochs
