"""Issue 16, what was left readable: Sieve script names, the outbound queue's error texts and
WebDAV dead properties of files are sealed when written, rows from before (plaintext) are sealed
by the converter and read the same afterwards, and a rotation re-seals them."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tau.atrest.convert import Converter, pending_total
from tau.files import propstore
from tau.files import store as files
from tau.mail.sieve import store as sieve
from tau.mail.store import queue
from tests.support.atrest import marker, markers_in
from tests.support.harness import add_user, resolve

ALICE, BOB = "alice@example.test", "bob@example.test"


@pytest.fixture
def alice(registry: Any) -> int:
    add_user(registry, ALICE, fast_hash=True)
    add_user(registry, BOB, fast_hash=True)
    return int(registry.db.sync.run("id", lambda txn: txn.scalar("SELECT id FROM users WHERE address = ?", (ALICE,))))


def _dump(registry: Any, *tables: str) -> bytes:
    out: list[bytes] = []
    for table in tables:
        for row in registry.db.sync.run("dump", lambda txn, t=table: txn.query(f"SELECT * FROM {t}")):
            out += [bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode() for v in row]
    return b"\n".join(out)


def _convert(registry: Any, table: Any) -> dict[str, int]:
    converter = Converter(registry, [table])
    resolve(converter.run_once())
    resolve(converter.release())   # the next run (another Converter) takes the lease at once
    return registry.db.sync.run("p", pending_total, [table])


# -- Sieve script names --------------------------------------------------------------------------

def test_a_script_name_is_sealed_and_still_found_by_name(registry: Any, alice: int) -> None:
    db, keyring = registry.db.sync, registry.keyring
    name = marker("script")
    db.run("put", sieve.put_script, keyring, ALICE, name, "keep;\r\n", True)
    db.run("put", sieve.put_script, keyring, ALICE, "another", "keep;\r\n")
    assert markers_in(_dump(registry, "sieve_scripts"), [name]) == []
    assert db.run("list", sieve.list_scripts, ALICE) == [("another", False), (name, True)]
    assert db.run("get", sieve.get_script, keyring, ALICE, name).content == "keep;\r\n"
    assert db.run("active", sieve.active_script, keyring, ALICE).name == name
    assert db.run("get", sieve.get_script, keyring, ALICE, name.upper()) is None   # names compare exactly
    assert db.run("space", sieve.space_used, ALICE, name)[0] == 1
    db.run("rename", sieve.rename_script, ALICE, "another", f"{name}2")
    assert [n for n, _ in db.run("list", sieve.list_scripts, ALICE)] == [name, f"{name}2"]
    with pytest.raises(sieve.SieveStoreError):
        db.run("rename", sieve.rename_script, ALICE, f"{name}2", name)
    db.run("delete", sieve.delete_script, ALICE, f"{name}2")
    assert db.run("list", sieve.list_scripts, ALICE) == [(name, True)]
    assert db.run("list", sieve.list_scripts, BOB) == []


def test_a_script_named_in_plaintext_before_is_converted_and_still_readable(registry: Any, alice: int) -> None:
    db, keyring = registry.db.sync, registry.keyring
    name = marker("old")
    db.run("old", lambda txn: txn.execute(   # as written before encryption at rest: all plaintext, kv 0
        "INSERT INTO sieve_scripts (user_id, name, content, active, updated_at) VALUES (?, ?, 'discard;', 1, 0)",
        (alice, name)))
    assert db.run("get", sieve.get_script, keyring, ALICE, name).content == "discard;"   # read before conversion
    assert db.run("p", pending_total, [sieve.SieveTable()]) == {"sieve": 1}
    assert _convert(registry, sieve.SieveTable()) == {"sieve": 0}
    assert markers_in(_dump(registry, "sieve_scripts"), [name]) == []
    assert db.run("list", sieve.list_scripts, ALICE) == [(name, True)]
    assert db.run("get", sieve.get_script, keyring, ALICE, name).content == "discard;"


def test_a_write_seals_the_users_plaintext_names_first(registry: Any, alice: int) -> None:
    """No name is ever both a plaintext row and a hashed one: a PUT of the same name replaces it."""
    db, keyring = registry.db.sync, registry.keyring
    db.run("old", lambda txn: txn.execute(
        "INSERT INTO sieve_scripts (user_id, name, content, active, updated_at) VALUES (?, 'old', 'keep;', 0, 0)",
        (alice,)))
    db.run("put", sieve.put_script, keyring, ALICE, "old", "discard;")
    assert db.run("list", sieve.list_scripts, ALICE) == [("old", False)]
    assert db.run("get", sieve.get_script, keyring, ALICE, "old").content == "discard;"


def test_rotation_reseals_script_names(registry: Any, alice: int) -> None:
    db, keyring = registry.db.sync, registry.keyring
    db.run("put", sieve.put_script, keyring, ALICE, "rotated", "keep;")
    db.run("rotate", keyring.rotate_txn)
    assert db.run("p", pending_total, [sieve.SieveTable()]) == {"sieve": 1}
    assert _convert(registry, sieve.SieveTable()) == {"sieve": 0}
    assert db.run("list", sieve.list_scripts, ALICE) == [("rotated", False)]


# -- the outbound queue's texts -----------------------------------------------------------------

def _enqueue(registry: Any, user: str | None) -> int:
    from tau.mail.store import MailStore

    key = resolve(registry.blobs.put(b"Subject: x\r\n\r\nbody\r\n")).key
    return resolve(MailStore(registry).enqueue_outbound(user, ALICE, ["a@remote.test"], key, 21, None))


def _fail(registry: Any, diagnostic: str) -> None:
    db = registry.db.sync
    [row] = db.run("claim", queue.claim, int(time.time()) + 1, 10, 60)
    db.run("record", queue.record, queue.Result(row, {"a@remote.test": ["failed", 550, diagnostic, "mx"]}),
           int(time.time()))


@pytest.mark.parametrize("user", [ALICE, None], ids=["user", "system"])
def test_a_remote_servers_reply_is_sealed_and_shown_opened(registry: Any, alice: int, user: str | None) -> None:
    db = registry.db.sync
    diagnostic = f"5.1.1 mailbox {marker('diag')} unknown"
    queue_id = _enqueue(registry, user)
    _fail(registry, diagnostic)
    assert markers_in(_dump(registry, "outbound_queue"), [diagnostic.split()[2]]) == []
    row = db.run("get", queue.get, queue_id)
    assert row.status == "failed" and diagnostic in (row.last_error or "")
    assert row.rcpt_state["a@remote.test"][2] == diagnostic
    assert row.to_json()["recipients"]["a@remote.test"]["text"] == diagnostic
    db.run("finish", queue.finish, queue_id, "failed", f"given up: {diagnostic}")
    row = db.run("get", queue.get, queue_id)
    assert row.last_error == f"given up: {diagnostic}" and row.rcpt_state["a@remote.test"][2] == diagnostic


def test_queue_texts_from_before_are_converted_and_still_readable(registry: Any, alice: int) -> None:
    db = registry.db.sync
    diagnostic = marker("olddiag")
    queue_id = _enqueue(registry, ALICE)
    db.run("old", lambda txn: txn.execute(   # as written before: plaintext texts, kv 0
        "UPDATE outbound_queue SET status = 'failed', last_error = ?, rcpt_state = ?, kv = 0 WHERE id = ?",
        (f"a@remote.test: 550 {diagnostic}", f'{{"a@remote.test": ["failed", 550, "{diagnostic}", ""]}}', queue_id)))
    assert db.run("get", queue.get, queue_id).last_error == f"a@remote.test: 550 {diagnostic}"
    assert db.run("p", pending_total, [queue.QueueTable()]) == {"queue": 1}
    assert _convert(registry, queue.QueueTable()) == {"queue": 0}
    assert markers_in(_dump(registry, "outbound_queue"), [diagnostic]) == []
    row = db.run("get", queue.get, queue_id)
    assert row.last_error == f"a@remote.test: 550 {diagnostic}" and row.rcpt_state["a@remote.test"][2] == diagnostic


def test_rotation_reseals_a_users_queue_texts(registry: Any, alice: int) -> None:
    db = registry.db.sync
    queue_id = _enqueue(registry, ALICE)
    _fail(registry, "5.0.0 no")
    db.run("rotate", registry.keyring.rotate_txn)
    assert db.run("p", pending_total, [queue.QueueTable()]) == {"queue": 1}
    assert _convert(registry, queue.QueueTable()) == {"queue": 0}
    assert "5.0.0 no" in (db.run("get", queue.get, queue_id).last_error or "")


# -- WebDAV dead properties of files --------------------------------------------------------------

PROP = "{urn:example:tests}note"


def _xml(text: str) -> str:
    return f'<X:note xmlns:X="urn:example:tests">{text}</X:note>'


def test_a_dead_property_is_sealed_and_read_back(registry: Any, alice: int) -> None:
    db = registry.db.sync
    text = marker("prop")
    root = db.run("root", files.ensure_root, alice)
    db.run("set", files.set_props, root.id, {PROP: _xml(text)}, [])
    assert markers_in(_dump(registry, "file_props"), [text]) == []
    assert db.run("props", files.props_of, [root.id]) == {root.id: {PROP: _xml(text)}}
    db.run("set", files.set_props, root.id, {PROP: _xml("changed")}, [])
    assert db.run("props", files.props_of, [root.id])[root.id][PROP] == _xml("changed")
    db.run("set", files.set_props, root.id, {}, [PROP])
    assert db.run("props", files.props_of, [root.id]) == {root.id: {}}


def test_a_dead_property_from_before_is_converted_and_still_readable(registry: Any, alice: int) -> None:
    db = registry.db.sync
    text = marker("oldprop")
    root = db.run("root", files.ensure_root, alice)
    db.run("old", lambda txn: txn.execute("INSERT INTO file_props (node_id, name, value) VALUES (?, ?, ?)",
                                          (root.id, PROP, _xml(text))))
    [table] = propstore.atrest_tables()
    assert db.run("props", files.props_of, [root.id])[root.id][PROP] == _xml(text)
    assert db.run("p", pending_total, [table]) == {"file_props": 1}
    assert _convert(registry, table) == {"file_props": 0}
    assert markers_in(_dump(registry, "file_props"), [text]) == []
    assert db.run("props", files.props_of, [root.id])[root.id][PROP] == _xml(text)
    db.run("rotate", registry.keyring.rotate_txn)
    assert db.run("p", pending_total, [table]) == {"file_props": 1}
    assert _convert(registry, table) == {"file_props": 0}
    assert db.run("props", files.props_of, [root.id])[root.id][PROP] == _xml(text)
