"""Opened ENVELOPE/BODY/BODYSTRUCTURE kept in memory after a FETCH (issue 21): a repeated header
sync answers the same without opening the sealed rows again; the memory it takes is bounded."""

from __future__ import annotations

from typing import Any

from tau.mail.store.opened import OpenedMeta
from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"


def test_a_second_header_sync_answers_what_the_first_did(registry: Any) -> None:
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    for n in range(1, 6):
        e.append(ALICE, message(n, subject=f"subject {n}"))
    c = e.client(ALICE, mailbox="INBOX")
    first = c.ok("a UID FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE)")
    assert len(first) == 5 and "subject 3" in first[2]
    assert c.ok("b UID FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE)") == first
    c.ok("c STORE 2 +FLAGS.SILENT (\\Flagged)")
    again = c.ok("d UID FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE)")
    assert "\\Flagged" in again[1]  # flags are read afresh; the opened metadata is reused
    assert again[:1] + again[2:] == first[:1] + first[2:]


def test_entries_are_per_owner_and_bounded() -> None:
    cache = OpenedMeta(max_chars=100)
    cache.put_many(1, [("k1", ("e" * 20, "b", "s")), ("k2", ("e" * 20, "b", "s"))])
    assert cache.get(1, "k1") == ("e" * 20, "b", "s")
    assert cache.get(2, "k1") is None  # another owner's row with the same blob opens on its own
    cache.put_many(1, [(f"n{i}", ("e" * 20, "b", "s")) for i in range(10)])
    assert cache.get(1, "k1") is None  # the oldest went first
    assert cache.get(1, "n9") is not None
    cache.put_many(1, [("huge", ("e" * 500, "", ""))])
    assert cache.get(1, "huge") is None  # larger than the whole bound: not kept
    cache.forget(1)
    assert cache.get(1, "n9") is None
