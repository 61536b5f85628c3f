"""``tau keys rotate|status``: the key hierarchy of encryption at rest (issue 16).

``rotate`` starts a new epoch at once: every user's keys are re-wrapped under a new master key
and every user gets a new active data key. The running daemon's converter then re-seals rows
under the new keys in the background (resumable; ``status``, ``/metrics`` and ``tau check``
show what is left) and drops the retired keys once nothing is sealed under them.
"""

from __future__ import annotations

import argparse
from typing import Any

from tau.atrest import store
from tau.atrest.convert import pending_total
from tau.atrest.keyring import Keyring
from tau.cli.common import EXIT_OK, add_action, add_group, keys_for, load, open_database, print_json
from tau.storage.database import Txn


def register(subparsers: Any) -> None:
    sub = add_group(subparsers, "keys", "rotate and inspect the keys that encrypt user data at rest")
    add_action(sub, "rotate", "new master key and new data keys for every user; data is re-sealed in the"
               " background by the running server", rotate, json=True)
    add_action(sub, "status", "the current key epoch and the rows still waiting to be sealed", status, json=True)


def rotate(args: argparse.Namespace) -> int:
    config = load(args)
    keyring = Keyring(keys_for(config))
    with open_database(config) as db:
        epoch, users = db.run("cli_keys_rotate", keyring.rotate_txn)
    if getattr(args, "json", False):
        print_json({"epoch": epoch, "users": users})
    else:
        print(f"key epoch {epoch}: re-wrapped the keys of {users} users and gave each a new data key;"
              " the server re-seals their data in the background (tau keys status)")
    return EXIT_OK


def _status(txn: Txn, tables: list[Any]) -> dict[str, Any]:
    latest = store.latest_epoch(txn)
    return {"epoch": latest[0] if latest else None, "retired_data_keys": store.retired_key_count(txn),
            "pending_rows": pending_total(txn, tables)}


def status(args: argparse.Namespace) -> int:
    from tau.registry import Registry

    config = load(args)
    tables = Registry(config).atrest_tables
    with open_database(config) as db:
        result = db.run("cli_keys_status", _status, tables, readonly=True)
    if getattr(args, "json", False):
        print_json(result)
        return EXIT_OK
    print(f"epoch {result['epoch'] if result['epoch'] is not None else '(none yet)'}")
    print(f"retired data keys waiting to be dropped: {result['retired_data_keys']}")
    for name, n in sorted(result["pending_rows"].items()):
        print(f"{name}: {n} rows to seal")
    return EXIT_OK
