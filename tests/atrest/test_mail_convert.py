"""Mail rows at rest at the store: sealed per user, converted from plaintext, re-sealed after a
rotation, and the token index's search semantics."""

from __future__ import annotations

from typing import Any

import pytest

from tau.atrest.convert import Converter, pending_total
from tau.mail.store.api import Search
from tau.mail.store.atrest_mail import MailTable
from tests.support.atrest import markers_in, unseal_mail
from tests.support.harness import add_user, resolve

ALICE, BOB = "alice@example.test", "bob@example.test"
MARK = "Kakapomark"


def _raw(subject: str, body: str = "some text") -> bytes:
    return (f"From: Kea Parrot <kea@remote.test>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@remote.test>\r\n\r\n{body}\r\n").encode()


@pytest.fixture
def store(registry: Any) -> Any:
    from tau.mail.store.service import MailStore

    add_user(registry, ALICE, fast_hash=True)
    add_user(registry, BOB, fast_hash=True)
    return MailStore(registry)


def _dump(registry: Any) -> bytes:
    """Every text and blob value of the mail tables, as bytes."""
    out = []
    for table in ("messages", "mail_content", "mailboxes", "message_text", "message_headers", "message_sort_keys"):
        for row in registry.db.sync.run("dump", lambda txn, t=table: txn.query(f"SELECT * FROM {t}")):
            out += [bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode() for v in row]
    return b"\n".join(out)


def _search(store: Any, user: str, *tree: Any, mailbox: str = "INBOX") -> list[int]:
    box = resolve(store.get_mailbox(user, mailbox))
    return resolve(store.search(box.id, Search(tuple(tree)), user=user))


def test_one_content_for_two_users_is_sealed_once_per_user(store: Any, registry: Any) -> None:
    raw = _raw(f"{MARK} subject", f"body {MARK}body")
    resolve(store.deliver([ALICE, BOB], raw, None, len(raw), None))
    rows = registry.db.sync.run("c", lambda txn: txn.query("SELECT user_id, blob_key FROM mail_content"))
    assert len(rows) == 2 and len({r[1] for r in rows}) == 1
    assert markers_in(_dump(registry), [MARK]) == []
    assert _search(store, ALICE, "body", f"{MARK}body") == [1]
    assert _search(store, BOB, "subject", MARK.lower()) == [1]


def test_search_matches_from_a_word_start_and_verifies_by_decrypting(store: Any) -> None:
    for subject in ("alpha betagamma", "alphabet soup", "x-ray delta"):
        resolve(store.append(ALICE, "INBOX", _raw(subject)))
    assert _search(store, ALICE, "subject", "alpha") == [1, 2]
    assert _search(store, ALICE, "subject", "alpha beta") == [1]       # last word: a prefix
    assert _search(store, ALICE, "subject", "alpha betagamma") == [1]
    assert _search(store, ALICE, "subject", "gamma") == []             # not at a word start
    assert _search(store, ALICE, "subject", "ray delta") == [3]
    assert _search(store, ALICE, "subject", "a") == [1, 2, 3]          # no indexable word: every candidate verified
    assert _search(store, ALICE, "not", ("subject", "soup")) == [1, 3]
    assert _search(store, ALICE, "or", ("subject", "soup"), ("from", "kea parrot")) == [1, 2, 3]
    assert _search(store, ALICE, "header", "message-id", "") == [1, 2, 3]
    assert _search(store, ALICE, "header", "x-nothing", "") == []


def test_plaintext_rows_from_before_are_sealed_by_the_converter(store: Any, registry: Any) -> None:
    for i in range(3):
        resolve(store.append(ALICE, "INBOX", _raw(f"{MARK}{i} subject", f"{MARK}text{i}")))
    resolve(store.create_mailbox(ALICE, f"{MARK}Folder"))
    assert registry.db.sync.run("unseal", unseal_mail, registry.keyring) == 3
    tables = [MailTable()]
    assert registry.db.sync.run("p", pending_total, tables)["mail"] > 0
    assert MARK.encode() in _dump(registry)
    done = resolve(Converter(registry, tables).run_once())
    assert done["mail"] > 0
    assert registry.db.sync.run("p", pending_total, tables) == {"mail": 0}
    assert markers_in(_dump(registry), [MARK]) == []
    names = [b.name for b in resolve(store.list_mailboxes(ALICE))]
    assert f"{MARK}Folder" in names
    box = resolve(store.get_mailbox(ALICE, f"{MARK}Folder"))
    assert box is not None
    inbox = [b for b in resolve(store.list_mailboxes(ALICE)) if b.messages == 3][0]
    assert resolve(store.search(inbox.id, Search(("body", f"{MARK}text1")), user=ALICE)) == [2]
    metas = resolve(store.fetch(inbox.id, [1, 2, 3]))
    assert all(MARK.lower() in m.envelope.lower() for m in metas)


def test_a_search_seals_its_mailbox_first(store: Any, registry: Any) -> None:
    resolve(store.append(ALICE, "INBOX", _raw("old subject", "old body")))
    registry.db.sync.run("unseal", unseal_mail, registry.keyring)
    assert _search(store, ALICE, "body", "old body") == [1]
    assert registry.db.sync.run("kv", lambda txn: txn.scalar("SELECT MIN(kv) FROM messages")) >= 1


def test_rotation_reseals_every_mail_row_under_the_new_key(store: Any, registry: Any) -> None:
    resolve(store.append(ALICE, "INBOX", _raw("before rotation", "words")))
    resolve(store.create_mailbox(ALICE, "Projects/Old"))
    registry.db.sync.run("rotate", registry.keyring.rotate_txn)
    tables = [MailTable()]
    assert registry.db.sync.run("p", pending_total, tables)["mail"] > 0
    resolve(store.append(ALICE, "INBOX", _raw("after rotation", "words")))  # under the new key at once
    assert _search(store, ALICE, "body", "words") == [1, 2]
    resolve(Converter(registry, tables).run_once())
    assert registry.db.sync.run("p", pending_total, tables) == {"mail": 0}
    versions = registry.db.sync.run("v", lambda txn: {r[0] for r in txn.query(
        "SELECT kv FROM messages UNION SELECT kv FROM mail_content UNION SELECT kv FROM mailboxes")})
    assert versions == {2}
    assert _search(store, ALICE, "subject", "before") == [1]
    assert "Projects/Old" in [b.name for b in resolve(store.list_mailboxes(ALICE))]
    resolve(store.rename_mailbox(ALICE, "Projects", "Work"))
    assert "Work/Old" in [b.name for b in resolve(store.list_mailboxes(ALICE))]


def test_sieve_scripts_and_pgp_private_keys_are_sealed_and_converted(store: Any, registry: Any) -> None:
    from tau.mail import pgp_store
    from tau.mail.sieve import store as sieve_store

    db, keyring = registry.db.sync, registry.keyring
    alice = registry.db.sync.run("id", lambda txn: int(txn.scalar("SELECT id FROM users WHERE address = ?",
                                                                    (ALICE,))))
    db.run("put", sieve_store.put_script, keyring, ALICE, "main", f'# {MARK}\r\nkeep;\r\n', True)
    db.run("pgp", pgp_store.save_key, keyring, alice, "F1", "PUBLIC", f"PRIVATE {MARK}", "h")
    rows = db.run("raw", lambda txn: txn.query("SELECT content, size FROM sieve_scripts")
                  + txn.query("SELECT private_key, kv FROM pgp_keys"))
    assert markers_in(repr(rows).encode(), [MARK]) == [] and rows[0][1] == len(f'# {MARK}\r\nkeep;\r\n')
    assert MARK in db.run("get", sieve_store.active_script, keyring, ALICE).content
    assert db.run("keys", pgp_store.keys_of, keyring, [ALICE])[ALICE] == ("PUBLIC", f"PRIVATE {MARK}")
    # rows from before the migration: plaintext, kv 0
    db.run("plain", lambda txn: (txn.execute("UPDATE sieve_scripts SET content = 'keep;', kv = 0"),
                                 txn.execute(f"UPDATE pgp_keys SET private_key = 'PRIVATE {MARK}', kv = 0")))
    tables = [sieve_store.SieveTable(), pgp_store.PgpTable()]
    assert db.run("p", pending_total, tables) == {"sieve": 1, "pgp": 1}
    resolve(Converter(registry, tables).run_once())
    assert db.run("p", pending_total, tables) == {"sieve": 0, "pgp": 0}
    assert db.run("get", sieve_store.active_script, keyring, ALICE).content == "keep;"
    assert db.run("keys", pgp_store.keys_of, keyring, [ALICE])[ALICE][1] == f"PRIVATE {MARK}"
