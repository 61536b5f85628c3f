"""``tau keys rotate|status``: a new epoch and new data keys, while old data stays readable."""

from __future__ import annotations

import json
from typing import Any

from tau.atrest import store
from tau.atrest.keyring import Keyring
from tau.auth import accounts
from tau.keys import Keys, load_secret


def _keyring(install: Any) -> Keyring:
    return Keyring(Keys(load_secret(install.data_dir / "secret")))


def test_rotate_gives_every_user_a_new_data_key_and_old_data_still_opens(with_alice: Any) -> None:
    uid = with_alice.db_run(accounts.require_user, "alice@example.test").id
    sealed = with_alice.db_run(_keyring(with_alice).for_user_txn, uid).seal("t|1", "kept")
    result = with_alice.run("keys", "rotate", "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert out["users"] == 1 and out["epoch"] == with_alice.db_run(store.latest_epoch)[0]
    key = with_alice.db_run(_keyring(with_alice).for_user_txn, uid)
    assert key.version == 2 and key.open_text("t|1", sealed) == "kept"


def test_status_names_the_epoch_and_what_is_left_to_seal(with_alice: Any) -> None:
    uid = with_alice.db_run(accounts.require_user, "alice@example.test").id
    with_alice.db_run(_keyring(with_alice).for_user_txn, uid)
    result = with_alice.run("keys", "status", "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert out["epoch"] == 1 and out["retired_data_keys"] == 0 and isinstance(out["pending_rows"], dict)
    with_alice.run("keys", "rotate")
    assert json.loads(with_alice.run("keys", "status", "--json").out)["retired_data_keys"] == 1
