"""SEARCH on sealed text (issue 16): the keyed token index finds candidates, decrypting verifies.

Each text leaf of a search tree (FROM, TO, CC, BCC, SUBJECT, HEADER, BODY, TEXT) is evaluated on
its own and replaced by the exact set of UIDs it matches (a ``("uid", ranges)`` leaf), so the
rest of the tree (NOT, OR, flags, dates) compiles to SQL as before (``search.compile_condition``).

Candidates: contents of the mailbox's messages whose ``mail_tokens`` hold every term of the
needle (``sealed.needle_terms``); a needle without an indexable word (one or two letters,
punctuation only) and contents too large to index take every message as a candidate. Each
candidate's field is then opened and matched as before: the casefolded, white-space-collapsed
needle is a substring of the field. Together: a match starts at the beginning of a word (as with
Dovecot's FTS), where SEARCH without encryption also found matches inside words.
"""

from __future__ import annotations

import time
from typing import Any

from tau.atrest.keyring import Keyring, UserKey
from tau.mail.store import sealed
from tau.mail.store.api import Search
from tau.mail.store.fields import fold
from tau.storage.budget import QueryCancelled, StatementTimeout
from tau.storage.database import Txn

#: more candidate contents than this: one pass over the mailbox instead of lookups by id
MAX_ID_LIST = 2000
#: counting a token's contents stops here (a common word needs no exact count to be ordered last)
COUNT_CAP = 2000
_MESSAGE_COLUMNS = {"from": "from_text", "to": "to_text", "cc": "cc_text", "bcc": "bcc_text", "subject": "subject"}
TEXT_LEAVES = frozenset({*_MESSAGE_COLUMNS, "body", "text", "header"})


def resolve(txn: Txn, keyring: Keyring, mailbox_id: int, query: Search | tuple) -> tuple:
    """``query``'s tree with every text leaf replaced by the UIDs it matches."""
    tree = query.tree if isinstance(query, Search) else query
    if not _has_text(tree):
        return tree
    uk = sealed.box_key(txn, keyring, mailbox_id)
    done: dict[Any, tuple] = {}
    return _walk(txn, uk, int(mailbox_id), tree, done)


def _has_text(node: Any) -> bool:
    if not isinstance(node, (tuple, list)) or not node or not isinstance(node[0], str):
        return False
    op = node[0].lower()
    if op in ("and", "or", "not"):
        return any(_has_text(a) for a in node[1:])
    return op in TEXT_LEAVES


def _walk(txn: Txn, uk: UserKey | None, mailbox_id: int, node: Any, done: dict[Any, tuple]) -> Any:
    if not isinstance(node, (tuple, list)) or not node or not isinstance(node[0], str):
        return node  # the compiler reports it
    op = node[0].lower()
    if op in ("and", "or", "not"):
        return (node[0], *(_walk(txn, uk, mailbox_id, a, done) for a in node[1:]))
    if op not in TEXT_LEAVES:
        return node
    key = repr(node)
    if key not in done:
        uids = [] if uk is None else _matching(txn, uk, mailbox_id, op, tuple(node[1:]))
        done[key] = ("uid", [(u, u) for u in uids]) if uids else ("none",)
    return done[key]


def within_budget(txn: Txn) -> None:
    """Verifying candidates is work in Python, not in a statement: it keeps to the statement time
    budget and cancellation all the same (tau.storage.budget), so a search that must decrypt a
    whole mailbox is cut like a slow query would be."""
    budget = txn.budget
    if budget is None:
        return
    if budget.cancelled:
        raise QueryCancelled("the client went away")
    # all the verifying of one transaction counts as one statement (SQLite re-arms the budget at
    # every statement, so the queries between the checks must not reset it)
    started = txn.memo.setdefault("textsearch_started", time.monotonic())
    if budget.expired() or time.monotonic() - started > budget.seconds:
        raise StatementTimeout("mail_search", budget.seconds)


def rarest_first(txn: Txn, tokens: list[int]) -> list[int]:
    """``tokens`` by how many contents hold them, fewest first; empty when one is in none (nothing
    indexed can match then). One index range count per token."""
    counts = []
    for token in dict.fromkeys(tokens):
        n = int(txn.scalar("SELECT COUNT(*) FROM (SELECT 1 FROM mail_tokens WHERE token = ? LIMIT ?) x",
                           (token, COUNT_CAP)))
        if not n:
            return []
        counts.append((n, token))
    return [token for _, token in sorted(counts)]


def _candidates(txn: Txn, uk: UserKey, terms: list[str]) -> set[int]:
    """Ids of the user's contents holding every term, plus those too large to index. Two plain
    index reads, so that neither engine's planner starts from the mailbox's messages instead."""
    ids = {int(r[0]) for r in txn.query("SELECT id FROM mail_content WHERE user_id = ? AND indexed = 0",
                                        (uk.user_id,))}
    tokens = rarest_first(txn, uk.tokens(sealed.PURPOSE, terms))
    if tokens:  # the rarest token drives, the others are probes of the (token, content) key
        probes = "".join(" AND EXISTS (SELECT 1 FROM mail_tokens p WHERE p.token = ? AND p.content_id = t.content_id)"
                         for _ in tokens[1:])
        ids.update(int(r[0]) for r in txn.query(f"SELECT t.content_id FROM mail_tokens t WHERE t.token = ?{probes}",
                                                [tokens[0], *tokens[1:]]))
    return ids


def _matching(txn: Txn, uk: UserKey, mailbox_id: int, op: str, args: tuple) -> list[int]:
    name = ""
    if op == "header":
        if not args:
            from tau.mail.store.api import InvalidSearch

            raise InvalidSearch("HEADER needs a field name")
        name = str(args[0]).strip().lower()
        needle = fold(str(args[1])) if len(args) > 1 and args[1] else ""
    else:
        if len(args) != 1:
            from tau.mail.store.api import InvalidSearch

            raise InvalidSearch(f"{op.upper()} takes one string")
        needle = fold(str(args[0]))
    terms = sealed.needle_terms(needle)
    if op == "header":
        terms.append(sealed.header_name_term(name))
    columns = {"body": "c.body", "text": "c.headers, c.body", "header": "c.headers"}.get(op)
    if columns is None:
        columns = "m." + _MESSAGE_COLUMNS[op]
    select = (f"SELECT m.uid, m.blob_key, m.kv, c.id, {columns} FROM mail_content c JOIN messages m"
              " ON m.blob_key = c.blob_key AND m.mailbox_id = ? WHERE c.user_id = ?")
    ids = _candidates(txn, uk, terms) if terms else None
    if ids is None or len(ids) > MAX_ID_LIST:  # most of the mailbox: one pass over it
        rows = [r for r in txn.query(select, [mailbox_id, uk.user_id]) if ids is None or int(r[3]) in ids]
    else:  # a few contents: found by id, then their messages in this mailbox by blob
        rows = []
        ordered = sorted(ids)
        for i in range(0, len(ordered), 500):
            part = ordered[i:i + 500]
            # "+m.mailbox_id": not an index term, so the planner starts from the ids (SQLite without
            # statistics would rather walk the whole mailbox and probe each blob)
            rows += txn.query(f"SELECT m.uid, m.blob_key, m.kv, c.id, {columns} FROM mail_content c JOIN messages m"
                              f" ON m.blob_key = c.blob_key WHERE c.id IN ({', '.join('?' * len(part))})"
                              " AND c.user_id = ? AND +m.mailbox_id = ?", [*part, uk.user_id, mailbox_id])
    rows = [(*r[:3], *r[4:]) for r in rows]
    rows = sorted(rows, key=lambda r: int(r[0]))
    out = []
    for i, row in enumerate(rows):
        if i % 64 == 0:
            within_budget(txn)
        uid, blob_key, kv = int(row[0]), row[1], int(row[2])
        if op in _MESSAGE_COLUMNS:
            found = needle in (sealed.open_text(uk, _MESSAGE_COLUMNS[op], blob_key, kv, row[3]) or "")
        elif op == "body":
            found = needle in sealed.open_content(uk, "body", blob_key, row[3])
        elif op == "header":
            found = any(n.lower() == name and needle in v for n, v in sealed.open_headers(uk, blob_key, row[3]))
        else:  # text: any header value or the body
            found = (any(needle in v for _, v in sealed.open_headers(uk, blob_key, row[3]))
                     or needle in sealed.open_content(uk, "body", blob_key, row[4]))
        if found:
            out.append(uid)
    return out
