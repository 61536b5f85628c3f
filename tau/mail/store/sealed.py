"""Mail's user content sealed at rest (issue 16): message rows' text columns and per-user content.

* ``messages`` / ``mail_purge_pending``: the columns in ``COLUMNS`` hold base64 text of a value
  sealed under the mailbox owner's data key, ``kv`` the key version (0: plaintext, a row from
  before the migration the converter has not reached yet). The associated data names the column
  and the blob (not the row id), so COPY/MOVE/EXPUNGE, which move rows with ``INSERT ... SELECT``
  inside one user's mailboxes, keep them readable, and a value moved to another user's row or
  another content fails to open.
* ``mail_content``: one row per (user, blob) with the search text, header rows and SORT/THREAD
  keys sealed, its ``mail_tokens`` (see ``tokens``) and its keyed THREAD keys (``threadkeys``).
  A blob delivered to two users has two such rows, one under each user's key; they go when the
  blob's last reference does (``blobrefs.collect``) or with the user.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from tau.atrest.keyring import Keyring, UserKey
from tau.mail.store import threadkeys
from tau.mail.store.sortkeys import SortKeys
from tau.storage.database import Txn

#: text columns of a messages row that are sealed, in the order ``seal_row`` returns them
COLUMNS = ("envelope", "body", "bodystructure", "subject", "from_text", "to_text", "cc_text", "bcc_text",
           "message_id", "parsed")
PURPOSE = "mail"
#: word prefix lengths indexed (a search word still open at its end uses the longest that fits)
PREFIXES = (3, 5, 8)
MAX_WORD = 64
#: beyond this many distinct terms a content is not indexed: every search verifies it instead
MAX_TERMS = 40_000
_WORD = re.compile(r"\w+")
_TOKEN_ROWS = 400


# -- keys ----------------------------------------------------------------------------------------

def owner_id(txn: Txn, mailbox_id: int) -> int | None:
    value = txn.scalar("SELECT user_id FROM mailboxes WHERE id = ?", (int(mailbox_id),))
    return None if value is None else int(value)


def box_key(txn: Txn, keyring: Keyring, mailbox_id: int) -> UserKey | None:
    """The keys of the owner of ``mailbox_id`` (None: no such mailbox, or nothing in it sealed:
    then the owner may have no keys yet, and a read-only transaction must not make them)."""
    row = txn.query_one("SELECT b.user_id FROM mailboxes b WHERE b.id = ? AND EXISTS"
                        " (SELECT 1 FROM messages m WHERE m.mailbox_id = b.id AND m.kv > 0)", (int(mailbox_id),))
    return None if row is None else keyring.for_user_txn(txn, int(row[0]))


# -- messages rows -------------------------------------------------------------------------------

def seal_text(uk: UserKey, column: str, blob_key: str, value: str | None) -> str | None:
    if value is None:
        return None
    return base64.b64encode(uk.seal(f"messages.{column}|{blob_key}", value)).decode("ascii")


def open_text(uk: UserKey | None, column: str, blob_key: str, kv: int, value: str | None) -> str | None:
    """The plaintext of a sealed column (``kv`` 0: stored in plaintext, returned as it is)."""
    if value is None or not kv:
        return value
    assert uk is not None
    return uk.open_text(f"messages.{column}|{blob_key}", base64.b64decode(value))


def seal_row(uk: UserKey, blob_key: str, values: Sequence[str | None]) -> list[str | None]:
    """``values`` (plaintext, in ``COLUMNS`` order) sealed, for the same columns. ENVELOPE, BODY
    and BODYSTRUCTURE, which every FETCH of them reads together, are one sealed value (in
    ``envelope``; ``body`` and ``bodystructure`` left empty): one decryption per message."""
    meta = "\x00".join(v or "" for v in values[:3])  # NUL never occurs in them (cleaning.clean)
    return [seal_text(uk, "meta", blob_key, meta), "", "",
            *(seal_text(uk, c, blob_key, v) for c, v in zip(COLUMNS[3:], values[3:], strict=True))]


def open_meta(uk: UserKey | None, blob_key: str, kv: int, envelope: str, body: str,
              bodystructure: str) -> tuple[str, str, str]:
    """(ENVELOPE, BODY, BODYSTRUCTURE) of a row, whether sealed (see ``seal_row``) or not."""
    if not kv:
        return envelope, body, bodystructure
    env, bod, bs = (open_text(uk, "meta", blob_key, kv, envelope) or "").split("\x00", 2)
    return env, bod, bs


def open_row(uk: UserKey | None, blob_key: str, kv: int, values: Sequence[str | None]) -> list[str | None]:
    """Plaintext of a row's ``COLUMNS`` values (the inverse of ``seal_row``)."""
    meta = open_meta(uk, blob_key, kv, values[0] or "", values[1] or "", values[2] or "")
    return [*meta, *(open_text(uk, c, blob_key, kv, v) for c, v in zip(COLUMNS[3:], values[3:], strict=True))]


def fields_values(fields: Any) -> list[str | None]:
    """A MessageFields' values in ``COLUMNS`` order."""
    return [fields.envelope, fields.body, fields.bodystructure, fields.subject, fields.from_text, fields.to_text,
            fields.cc_text, fields.bcc_text, fields.message_id, fields.parsed_json]


# -- search terms --------------------------------------------------------------------------------

def terms(texts: Iterable[str]) -> set[str]:
    """Index terms of already folded texts: ``w:`` each word (2+ characters), ``p:`` its
    prefixes of ``PREFIXES`` lengths."""
    words: set[str] = set()
    for text in texts:
        words.update(_WORD.findall(text))
    out: set[str] = set()
    for word in words:
        word = word[:MAX_WORD]
        if len(word) >= 2:
            out.add("w:" + word)
        for n in PREFIXES:
            if len(word) >= n:
                out.add("p:" + word[:n])
    return out


def needle_terms(needle: str) -> list[str]:
    """Terms every text containing the folded ``needle`` at a word start has: words bounded on
    the right within the needle must be whole words; the last one, when the needle ends inside
    it, is a prefix. Words too short to be indexed add nothing (the search verifies anyway)."""
    out: list[str] = []
    for m in _WORD.finditer(needle):
        word = m.group(0)[:MAX_WORD]
        if m.end() < len(needle):
            if len(word) >= 2:
                out.append("w:" + word)
        else:
            fits = [n for n in PREFIXES if n <= len(word)]
            if fits:
                out.append("p:" + word[:fits[-1]])
    return list(dict.fromkeys(out))


def header_name_term(name: str) -> str:
    return "n:" + name


# -- per-user content ----------------------------------------------------------------------------

def _context(column: str, blob_key: str) -> str:
    return f"mail_content.{column}|{blob_key}"


def sort_json(keys: SortKeys | None) -> str:
    k = keys or SortKeys("", False, "", "", "", "", "", "", "")
    return json.dumps([k.subject, k.reply, k.from_mbox, k.to_mbox, k.cc_mbox, k.display_from, k.display_to,
                       k.message_id, k.refs])


def sort_keys(value: str) -> SortKeys:
    s = json.loads(value)
    return SortKeys(s[0], bool(s[1]), s[2], s[3], s[4], s[5], s[6], s[7], s[8])


def store_content(txn: Txn, uk: UserKey, blob_key: str, text: str, headers: Sequence[tuple[str, str]],
                  keys: SortKeys | None) -> None:
    """The user's sealed content row and tokens for ``blob_key`` (once per user and content)."""
    if txn.query_one("SELECT 1 FROM mail_content WHERE user_id = ? AND blob_key = ?", (uk.user_id, blob_key)):
        return
    found = terms([text, *(v for _, v in headers)])
    found.update(header_name_term(n.lower()) for n, _ in headers)
    indexed = len(found) <= MAX_TERMS
    row = txn.query_one(
        "INSERT INTO mail_content (user_id, blob_key, kv, indexed, body, headers, sort) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, blob_key) DO NOTHING RETURNING id",
        (uk.user_id, blob_key, uk.version, int(indexed), uk.seal(_context("body", blob_key), text),
         uk.seal(_context("headers", blob_key), json.dumps([list(h) for h in headers])),
         uk.seal(_context("sort", blob_key), sort_json(keys))))
    if row is None:
        return
    content_id = int(row[0])
    threadkeys.store(txn, content_id, uk, keys)
    if not indexed:
        return
    tokens = sorted(set(uk.tokens(PURPOSE, found)))
    for i in range(0, len(tokens), _TOKEN_ROWS):
        part = tokens[i:i + _TOKEN_ROWS]
        txn.execute("INSERT INTO mail_tokens (token, content_id) VALUES " + ", ".join(["(?, ?)"] * len(part))
                    + " ON CONFLICT DO NOTHING", [v for t in part for v in (t, content_id)])


def open_content(uk: UserKey, column: str, blob_key: str, value: bytes | memoryview | None) -> str:
    if value is None:
        return ""
    return uk.open_text(_context(column, blob_key), value)


def open_headers(uk: UserKey, blob_key: str, value: bytes | memoryview | None) -> list[tuple[str, str]]:
    if value is None:
        return []
    return [(n, v) for n, v in json.loads(open_content(uk, "headers", blob_key, value))]


def reseal_content(txn: Txn, uk: UserKey, content_id: int, blob_key: str, row: Sequence[Any]) -> None:
    """Re-seal a content row (body, headers, sort as stored) under the active data key."""
    body, headers, sort = (uk.open(_context(c, blob_key), v) for c, v in zip(("body", "headers", "sort"), row,
                                                                             strict=True))
    txn.execute("UPDATE mail_content SET kv = ?, body = ?, headers = ?, sort = ? WHERE id = ?",
                (uk.version, uk.seal(_context("body", blob_key), body), uk.seal(_context("headers", blob_key), headers),
                 uk.seal(_context("sort", blob_key), sort), content_id))


def drop_content(txn: Txn, blob_key: str) -> None:
    """Every user's content rows of a blob that is gone."""
    txn.execute("DELETE FROM mail_tokens WHERE content_id IN (SELECT id FROM mail_content WHERE blob_key = ?)",
                (blob_key,))
    txn.execute("DELETE FROM mail_content WHERE blob_key = ?", (blob_key,))
