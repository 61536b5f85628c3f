"""Compile a ``Search`` tree (RFC 3501 section 6.4.4) into one SQL WHERE clause with ``?`` params.

No value a client sent is ever formatted into the SQL text: flags become LIKE patterns with
``%``, ``_`` and ``\\`` escaped (``ESCAPE '\\'``), numbers go through ``int()``. The text keys
(FROM, TO, CC, BCC, SUBJECT, HEADER, BODY, TEXT) read sealed columns: ``textsearch.resolve``
replaces each with the UIDs it matches (token index, then decrypting the candidates) before the
tree is compiled, and the compiler refuses one left unresolved.

Leaves (see api.Search): ("all",), ("none",), ("uid", [(lo, hi), ...]) with hi None for "n:*"
(which always includes the highest UID, RFC 3501 section 6.4.8); ("flag", flag, present);
("seen"|"unseen"|"answered"|"unanswered"|"flagged"|"unflagged"|"deleted"|"undeleted"|"draft"|
"undraft",); ("keyword"|"unkeyword", kw); ("header", name, s); ("from"|"to"|"cc"|"bcc"|"subject",
s); ("body"|"text", s); ("before"|"on"|"since", t) on the internal date and ("sentbefore"|"senton"|
"sentsince", t) on the Date: header's calendar day, t being the UTC midnight (calendar.timegm) of
the IMAP date; ("larger"|"smaller", n); ("modseq", n) (RFC 7162: MODSEQ >= n); ("younger"|"older",
seconds) (RFC 5032). \\Recent is session state the store does not keep: the IMAP session should
rewrite RECENT/NEW/OLD into UID leaves; left as they are, ("recent",) and ("new",) match nothing
and ("old",) everything.
"""

from __future__ import annotations

import json
from typing import Any

from tau.mail.store.api import InvalidSearch, MailStoreError, Search
from tau.mail.store.names import canonical_flag

#: beyond this many UID ranges one leaf is passed as a single JSON parameter
MAX_INLINE_RANGES = 100
#: more UIDs in a set of many ranges than this: tested range by range instead of listed
MAX_LISTED_UIDS = 200_000

_SHORT_FLAGS = {
    "seen": ("\\Seen", True), "unseen": ("\\Seen", False),
    "answered": ("\\Answered", True), "unanswered": ("\\Answered", False),
    "flagged": ("\\Flagged", True), "unflagged": ("\\Flagged", False),
    "deleted": ("\\Deleted", True), "undeleted": ("\\Deleted", False),
    "draft": ("\\Draft", True), "undraft": ("\\Draft", False),
}
_TEXT_LEAVES = frozenset({"from", "to", "cc", "bcc", "subject", "header", "body", "text"})
_DATES = {"before": ("m.internal_date", "<"), "on": ("m.internal_date", "on"), "since": ("m.internal_date", ">="),
          "sentbefore": ("m.sent_day", "<"), "senton": ("m.sent_day", "="), "sentsince": ("m.sent_day", ">=")}
_ESCAPE = " ESCAPE '\\'"
DAY = 86400


def like_pattern(value: str) -> str:
    """``%value%`` for LIKE with the wildcards in ``value`` matched literally."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidSearch(f"not a number: {value!r}") from None


class _Compiler:
    def __init__(self, engine: str, mailbox_id: int, now: float) -> None:
        self.engine = engine
        self.mailbox_id = mailbox_id
        self.now = int(now)  # YOUNGER/OLDER (RFC 5032) count back from here
        self.params: list[Any] = []

    def p(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def node(self, node: Any) -> str:
        if not isinstance(node, (tuple, list)) or not node or not isinstance(node[0], str):
            raise InvalidSearch(f"malformed search node {node!r}")
        op, args = node[0].lower(), tuple(node[1:])
        if op in ("and", "or"):
            if not args:
                return "1=1" if op == "and" else "1=0"
            return "(" + f" {op.upper()} ".join(self.node(a) for a in args) + ")"
        if op == "not":
            if len(args) != 1:
                raise InvalidSearch("NOT takes one key")
            return f"NOT ({self.node(args[0])})"
        leaf = getattr(self, "leaf_" + op, None)
        if leaf is not None:
            return leaf(*args)
        if op in _SHORT_FLAGS:
            return self.leaf_flag(*_SHORT_FLAGS[op])
        if op in _TEXT_LEAVES:  # sealed at rest: textsearch.resolve turns them into UID sets first
            raise InvalidSearch(f"{op} must be resolved through the token index (textsearch.resolve)")
        if op in _DATES:
            return self.date(op, *args)
        raise InvalidSearch(f"unsupported search key {op!r}")

    # -- leaves ----------------------------------------------------------------------------

    def leaf_all(self) -> str:
        return "1=1"

    def leaf_none(self) -> str:
        return "1=0"

    leaf_old = leaf_all
    leaf_new = leaf_none
    leaf_recent = leaf_none

    def leaf_uid(self, ranges: Any) -> str:
        bounded: list[tuple[int, int]] = []
        star_lows: list[int] = []  # "n:*": n..max, and max even when n > max
        bare_star = False          # "*": the highest UID
        for item in ranges:
            lo, hi = tuple(item) if isinstance(item, (tuple, list)) else (item, item)
            if lo is None and hi is None:
                bare_star = True
            elif lo is None or hi is None:
                star_lows.append(_int(lo if lo is not None else hi))
            else:
                lo, hi = _int(lo), _int(hi)
                bounded.append((min(lo, hi), max(lo, hi)))
        parts: list[str] = []
        if star_lows or bare_star:  # params are appended in the order they appear in the SQL
            low = f"m.uid >= {self.p(min(star_lows))} OR " if star_lows else ""
            top = f"m.uid = (SELECT MAX(x.uid) FROM messages x WHERE x.mailbox_id = {self.p(self.mailbox_id)})"
            parts.append(f"({low}{top})")
        bounded = _merge(bounded)
        if len(bounded) > MAX_INLINE_RANGES:
            parts.append(self.json_ranges(bounded))
        else:
            parts += [f"m.uid BETWEEN {self.p(lo)} AND {self.p(hi)}" for lo, hi in bounded]
        return "(" + " OR ".join(parts) + ")" if parts else "1=0"

    def json_ranges(self, ranges: list[tuple[int, int]]) -> str:
        if sum(hi - lo + 1 for lo, hi in ranges) <= MAX_LISTED_UIDS:
            # every UID listed: one set built once and probed per message (a text search's
            # answer is such a list; testing each message against each range was quadratic)
            listed = self.p(json.dumps([u for lo, hi in ranges for u in range(lo, hi + 1)]))
            if self.engine == "postgres":
                return f"m.uid IN (SELECT CAST(jsonb_array_elements_text(CAST({listed} AS jsonb)) AS bigint))"
            return f"m.uid IN (SELECT value FROM json_each({listed}))"
        value = self.p(json.dumps(ranges))
        if self.engine == "postgres":
            return (f"EXISTS (SELECT 1 FROM jsonb_array_elements(CAST({value} AS jsonb)) r"
                    " WHERE m.uid BETWEEN (r.value->>0)::bigint AND (r.value->>1)::bigint)")
        return (f"EXISTS (SELECT 1 FROM json_each({value}) r"
                " WHERE m.uid BETWEEN json_extract(r.value, '$[0]') AND json_extract(r.value, '$[1]'))")

    def leaf_flag(self, flag: str, present: bool = True) -> str:
        if isinstance(flag, str) and flag.lower() == "\\recent":
            return self.leaf_recent() if present else self.leaf_all()
        try:
            flag = canonical_flag(flag)
        except MailStoreError as exc:
            raise InvalidSearch(exc.message) from None
        if flag == "\\Seen":
            return _state(f"f.seen = {1 if present else 0}")
        if flag == "\\Deleted":
            return _state(f"f.deleted = {1 if present else 0}")
        cond = _state(f"LOWER(' ' || f.flags || ' ') LIKE {self.p(like_pattern(' ' + flag.lower() + ' '))}{_ESCAPE}")
        return cond if present else f"NOT {cond}"

    def leaf_keyword(self, keyword: str) -> str:
        return self.leaf_flag(keyword, True)

    def leaf_unkeyword(self, keyword: str) -> str:
        return self.leaf_flag(keyword, False)

    def date(self, op: str, day: Any) -> str:
        column, cmp = _DATES[op]
        start = _int(day)
        if cmp == "on":
            return f"({column} >= {self.p(start)} AND {column} < {self.p(start + DAY)})"
        return f"{column} {cmp} {self.p(start)}"

    def leaf_larger(self, n: Any) -> str:
        return f"m.size > {self.p(_int(n))}"

    def leaf_smaller(self, n: Any) -> str:
        return f"m.size < {self.p(_int(n))}"

    def leaf_modseq(self, n: Any, *ignored: Any) -> str:
        return _state(f"f.modseq >= {self.p(_int(n))}")

    def leaf_younger(self, seconds: Any) -> str:
        return f"m.internal_date >= {self.p(self.now - _int(seconds))}"

    def leaf_older(self, seconds: Any) -> str:
        return f"m.internal_date < {self.p(self.now - _int(seconds))}"


def _state(cond: str) -> str:
    """``cond`` on the message's ``message_flags`` row (``f``): a key lookup, and only for the
    searches that ask about flags or MODSEQ (every live message has exactly one such row)."""
    return f"EXISTS (SELECT 1 FROM message_flags f WHERE f.mailbox_id = m.mailbox_id AND f.uid = m.uid AND {cond})"


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]


def compile_condition(query: Search | tuple, engine: str, mailbox_id: int, now: float) -> tuple[str, list[Any]]:
    """(condition on ``messages m``, params) for ``query``; SORT and THREAD build on it."""
    tree = query.tree if isinstance(query, Search) else query
    compiler = _Compiler(engine, mailbox_id, now)
    return compiler.node(tree), compiler.params


def compile_search(query: Search | tuple, engine: str, mailbox_id: int, now: float) -> tuple[str, list[Any]]:
    """(``SELECT m.uid ...`` SQL, params) for the UIDs of ``mailbox_id`` matching ``query``."""
    cond, params = compile_condition(query, engine, mailbox_id, now)
    return (f"SELECT m.uid FROM messages m WHERE m.mailbox_id = ? AND ({cond}) ORDER BY m.uid",
            [mailbox_id, *params])


def search(txn: Any, keyring: Any, mailbox_id: int, query: Search | tuple, user: str | None = None) -> list[int]:
    """UIDs matching ``query``, ascending; no blob reads: text leaves through the token index and
    sealed rows (``textsearch``), the rest in SQL."""
    from tau.mail.store.mailboxes import require_owned
    from tau.mail.store.textsearch import resolve

    require_owned(txn, mailbox_id, user)
    tree = resolve(txn, keyring, int(mailbox_id), query)
    sql, params = compile_search(tree, txn.engine.name, int(mailbox_id), txn.now)
    return [int(r[0]) for r in txn.query(sql, params)]
