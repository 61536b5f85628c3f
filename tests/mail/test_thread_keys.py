"""THREAD from keyed hashes (issue 21): a cold THREAD — a new server process, an empty result
cache — reads ``mail_thread_keys`` (HMACs of ids and base subjects under the user's index key)
and answers exactly what threading the plaintext keys answers; contents stored before that table
thread alike and are filled in by the at-rest converter. Both engines."""

from __future__ import annotations

import random
from typing import Any

from tau.mail.mime.parse import parse_message
from tau.mail.store import threading
from tau.mail.store.atrest_mail import MailTable
from tau.mail.store.sortkeys import keys_of
from tests.support.atrest import marker, markers_in
from tests.support.imap import IMAPEnv

ALICE = "alice@example.test"
T0 = 1_700_000_000


def _corpus(n: int, seed: int = 3) -> list[bytes]:
    """Reply chains (References, or only In-Reply-To), "Re:"/"Fwd:" subjects, a few messages
    without Message-ID or with another's, parents the mailbox never had, shuffled dates."""
    rng = random.Random(seed)
    threads: list[tuple[str, list[str]]] = []
    out = []
    for i in range(n):
        mid = f"<c{i}@x.test>"
        extra = ""
        if not threads or rng.random() < 0.2:
            topic = f"topic {len(threads)}"
            chain = [f"<gone{i}@x.test>"] if rng.random() < 0.2 else []  # a parent never delivered
            threads.append((topic, chain))
            subject = topic
            if chain:
                extra = f"References: {chain[0]}\r\n"
        else:
            topic, chain = rng.choice(threads)
            parents = chain[:rng.randrange(1, len(chain) + 1)] if chain else []
            subject = rng.choice(("Re: ", "Fwd: ", "Re: [list] ", "")) + topic
            if parents and rng.random() < 0.3:
                extra = f"In-Reply-To: {parents[-1]}\r\n"
            elif parents:
                extra = f"References: {' '.join(parents)}\r\n"
        chain.append(mid)
        if rng.random() < 0.05:
            mid = "" if rng.random() < 0.5 else "<c0@x.test>"
        date = f"{rng.randrange(1, 28)} Mar 2023 {rng.randrange(24):02d}:00:00 +0000"
        head = f"From: bob@b.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\nDate: {date}\r\n"
        head += f"Message-ID: {mid}\r\n" if mid else ""
        out.append((head + extra + "\r\nhi\r\n").encode())
    return out


def _env(registry: Any, raws: list[bytes]) -> IMAPEnv:
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    for i, raw in enumerate(raws):
        e.append(ALICE, raw, internal_date=T0 + i)
    return e


def _restarted(registry: Any) -> IMAPEnv:
    """An IMAP server over the same database as a new process would have it: nothing cached."""
    from tau.mail.store.service import MailStore

    e = IMAPEnv(registry)
    e.factory.store = e.store = MailStore(registry)
    return e


def _thread(e: IMAPEnv, algorithm: str) -> str:
    """UID THREAD over a new connection of ``e``'s server."""
    lines = e.client(ALICE, mailbox="INBOX").ok(f"t UID THREAD {algorithm} UTF-8 ALL")
    assert len(lines) == 1 and lines[0].startswith("* THREAD"), lines
    return lines[0][len("* THREAD"):].strip()


def _plaintext_thread(registry: Any, raws: list[bytes], algorithm: str) -> str:
    """What threading the plaintext keys (the texts themselves, as before issue 21) answers."""
    dates = dict(registry.db.sync.run("dates", lambda txn: txn.query("SELECT uid, sent_date FROM messages")))
    rows = []
    for uid, raw in enumerate(raws, start=1):
        k = keys_of(parse_message(raw))
        rows.append(threading.ThreadRow(uid, int(dates[uid]), k.subject, k.reply, k.message_id,  # type: ignore[arg-type]
                                        tuple(k.refs.split())))  # type: ignore[arg-type]
    run = threading.references if algorithm == "REFERENCES" else threading.ordered_subject
    return threading.render(threading.flatten(run(rows)), lambda u: u)


def test_cold_thread_equals_warm_and_plaintext_threading(registry: Any) -> None:
    raws = _corpus(80)
    e = _env(registry, raws)
    for algorithm in ("REFERENCES", "ORDEREDSUBJECT"):
        warm_server = _restarted(registry)
        first = _thread(warm_server, algorithm)
        assert _thread(warm_server, algorithm) == first  # from the result cache
        assert _thread(_restarted(registry), algorithm) == first  # a new server: nothing in memory
        assert first == _plaintext_thread(registry, raws, algorithm)
    assert _thread(e, "REFERENCES").count("(") > 10  # the corpus does thread


def test_a_reply_chain_threads_alike_cold_and_warm(registry: Any) -> None:
    raws = [f"From: a@x.test\r\nSubject: {'Re: ' * (i > 0)}chain\r\nDate: {i + 1} Mar 2023 10:00:00 +0000\r\n"
            f"Message-ID: <r{i}@x>\r\n{f'In-Reply-To: <r{i - 1}@x>' if i else ''}\r\n\r\nhi\r\n".encode()
            for i in range(5)]
    raws.append(b"From: a@x.test\r\nSubject: Re: chain\r\nDate: 9 Mar 2023 10:00:00 +0000\r\n"
                b"Message-ID: <r9@x>\r\nReferences: <r0@x> <r2@x>\r\n\r\nhi\r\n")
    e = _env(registry, raws)
    assert _thread(e, "REFERENCES") == "(1 2 3 (4 5)(6))"
    assert _thread(e, "REFERENCES") == "(1 2 3 (4 5)(6))"
    assert _thread(_restarted(registry), "REFERENCES") == "(1 2 3 (4 5)(6))"


def test_contents_stored_before_the_thread_keys_thread_alike_and_get_them_from_the_converter(registry: Any) -> None:
    raws = _corpus(30, seed=5)
    _env(registry, raws)
    expected = {a: _thread(_restarted(registry), a) for a in ("REFERENCES", "ORDEREDSUBJECT")}
    db = registry.db.sync
    db.run("forget", lambda txn: txn.execute("DELETE FROM mail_thread_keys"))
    assert {a: _thread(_restarted(registry), a) for a in expected} == expected  # computed on the fly
    table = MailTable()
    assert db.run("pending", table.pending) == 30
    while db.run("convert", table.convert, registry.keyring, 7):
        pass
    assert db.run("pending", table.pending) == 0
    assert db.run("count", lambda txn: txn.scalar("SELECT COUNT(*) FROM mail_thread_keys")) == 30
    assert {a: _thread(_restarted(registry), a) for a in expected} == expected


def test_thread_keys_hold_no_readable_id_or_subject(registry: Any) -> None:
    mid, parent, subject = marker("mid"), marker("ref"), marker("subj")
    e = _env(registry, [f"From: a@x.test\r\nSubject: Re: {subject}\r\nMessage-ID: <{mid}@x.test>\r\n"
                        f"References: <{parent}@x.test>\r\n\r\nhi\r\n".encode()])
    rows = registry.db.sync.run("keys", lambda txn: txn.query("SELECT keys FROM mail_thread_keys"))
    assert len(rows) == 1
    value = bytes(rows[0][0])
    assert len(value) == 4 * 8  # reply, subject, Message-ID, one parent: 64-bit hashes
    assert markers_in(value, [mid, parent, subject]) == []
    assert _thread(e, "REFERENCES") == "(1)"


def _replace_stored(registry: Any, kind: str, values: list[int]) -> None:
    """Put a stand-in answer in place of the stored ``kind`` result (same digest, same sealing)."""
    from tau.mail.store import results

    def run(txn: Any) -> None:
        box_id, digest = txn.query_one("SELECT mailbox_id, digest FROM mail_results WHERE kind = ?", (kind,))
        user_id = txn.scalar("SELECT user_id FROM mailboxes WHERE id = ?", (box_id,))
        results.save(txn, registry.keyring.for_user_txn(txn, int(user_id)), int(box_id), kind, bytes(digest), values)

    registry.db.sync.run("fake", run)


def test_a_restarted_server_answers_from_the_stored_result_only_for_the_same_messages(registry: Any,
                                                                                      monkeypatch: Any) -> None:
    from tau.mail.store import results

    monkeypatch.setattr(results, "MIN_MESSAGES", 2)
    e = _env(registry, _corpus(12, seed=9))
    expected = _thread(e, "REFERENCES")
    db = registry.db.sync
    assert db.run("kinds", lambda txn: [r[0] for r in txn.query("SELECT kind FROM mail_results")]) == [
        "thread:references"]
    # a stand-in answer proves the next server reads the row instead of threading again
    _replace_stored(registry, "thread:references", [threading.OPEN, 12, threading.CLOSE])
    assert _thread(_restarted(registry), "REFERENCES") == "(12)"
    e.append(ALICE, b"From: a@x.test\r\nSubject: new\r\nMessage-ID: <new@x>\r\n\r\nhi\r\n", internal_date=T0 + 99)
    assert _thread(_restarted(registry), "REFERENCES") == expected + "(13)"  # other UIDs: threaded again
    assert _thread(_restarted(registry), "REFERENCES") == expected + "(13)"  # and stored anew
    assert db.run("n", lambda txn: txn.scalar("SELECT COUNT(*) FROM mail_results")) == 1


def _sort(e: IMAPEnv, args: str) -> list[int]:
    lines = e.client(ALICE, mailbox="INBOX").ok("s UID SORT " + args)
    assert len(lines) == 1 and lines[0].startswith("* SORT"), lines
    return [int(x) for x in lines[0].split()[2:]]


def test_a_sort_on_sealed_keys_is_stored_sealed_and_read_after_a_restart(registry: Any, monkeypatch: Any) -> None:
    from tau.mail.store import results

    monkeypatch.setattr(results, "MIN_MESSAGES", 2)
    subject = marker("subj")
    raws = [f"From: a@x.test\r\nSubject: {subject} {c}\r\nMessage-ID: <s{c}@x>\r\n\r\nhi\r\n".encode()
            for c in "cab"]
    e = _env(registry, raws)
    assert _sort(e, "(SUBJECT) UTF-8 ALL") == [2, 3, 1]
    assert _sort(e, "(DATE) UTF-8 ALL") == [1, 2, 3]  # SQL alone: nothing stored for it
    stored = registry.db.sync.run("rows", lambda txn: txn.query("SELECT kind, result FROM mail_results"))
    assert [r[0] for r in stored] == ["sort:subject"]
    assert markers_in(bytes(stored[0][1]), [subject]) == [] and len(bytes(stored[0][1])) > 3 * 8  # sealed
    _replace_stored(registry, "sort:subject", [3, 2, 1])
    assert _sort(_restarted(registry), "(SUBJECT) UTF-8 ALL") == [3, 2, 1]  # read, not sorted again
    assert _sort(_restarted(registry), "(REVERSE SUBJECT) UTF-8 ALL") == [1, 3, 2]  # another order: sorted
    kinds = registry.db.sync.run("kinds", lambda txn: sorted(r[0] for r in txn.query("SELECT kind FROM mail_results")))
    assert kinds == ["sort:-subject", "sort:subject"]
    monkeypatch.setattr(results, "MAX_SORTS", 2)
    assert _sort(_restarted(registry), "(FROM SUBJECT) UTF-8 ALL") == [2, 3, 1]
    kinds = registry.db.sync.run("kinds", lambda txn: sorted(r[0] for r in txn.query("SELECT kind FROM mail_results")))
    assert kinds == ["sort:from,subject"]  # bounded: the others went
