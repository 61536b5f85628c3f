"""SEARCH and UID SEARCH (RFC 3501 §6.4.4, §6.4.8; CHARSET UTF-8; CONDSTORE MODSEQ, RFC 7162
§3.1.5).

Search keys are compiled into the store's ``Search`` tree (``tau.mail.store.api.Search``) and
evaluated there, over the fields indexed at delivery; message sequence numbers are turned into
UID ranges with the session's map first, and RECENT/NEW/OLD into the UID ranges that are \\Recent
for this session (recent.py).
"""

from __future__ import annotations

from typing import Any

from tau.mail.store.api import Search

from . import esearch, recent
from .base import No
from .esearch import numbering, numbers, register
from .parser import ParseError, Parser, SavedSet
from .session import SelectedMailbox

NOTHING: tuple = ("none",)
MAX_DEPTH = 40
#: search keys one command may use, NOT/OR and parenthesised groups counted too: each string key
#: is one more LIKE scan of every message, so a few thousand held the database for minutes
MAX_KEYS = 100
CHARSETS = ("UTF-8", "US-ASCII")

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True), "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True), "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False), "UNDELETED": ("\\Deleted", False), "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False), "UNSEEN": ("\\Seen", False),
}
_STRING_KEYS = {"BCC": "bcc", "BODY": "body", "CC": "cc", "FROM": "from", "SUBJECT": "subject",
                "TEXT": "text", "TO": "to"}
_DATE_KEYS = {"BEFORE": "before", "ON": "on", "SINCE": "since", "SENTBEFORE": "sentbefore",
              "SENTON": "senton", "SENTSINCE": "sentsince"}


class _Compiler:
    def __init__(self, p: Parser, view: SelectedMailbox) -> None:
        self.p = p
        self.view = view
        self.modseq = False
        self.count = 0

    def keys(self, depth: int = 0) -> tuple:
        """``search-key *(SP search-key)`` up to the end of the command or a ``)``."""
        keys = [self.key(depth)]
        while self.p.take(b" "):
            keys.append(self.key(depth))
        return keys[0] if len(keys) == 1 else ("and", *keys)

    def string(self) -> str:
        self.p.sp()
        raw = self.p.astring()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("search string is not UTF-8") from None

    def saved(self) -> tuple:
        """``$`` (RFC 5182): the saved result's UIDs."""
        uids = self.view.saved_uids()
        return ("uid", [(u, u) for u in uids]) if uids else NOTHING

    def key(self, depth: int) -> tuple:
        if depth > MAX_DEPTH:
            raise ParseError("search nested too deeply")
        self.count += 1
        if self.count > MAX_KEYS:
            raise No(f"Too many search keys (at most {MAX_KEYS})", "LIMIT")
        p = self.p
        if p.take(b"("):
            tree = self.keys(depth + 1)
            p.expect(b")")
            return tree
        c = p.peek()
        if c in (ord("*"), ord("$")) or ord("0") <= c <= ord("9"):
            seqset = p.seqset()
            if isinstance(seqset, SavedSet):
                return self.saved()
            ranges = self.view.uid_ranges_for_seq(seqset)
            return ("uid", ranges) if ranges else NOTHING
        word = p.keyword()
        if word in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[word]
            return ("flag", flag, present)
        if word in _STRING_KEYS:
            return (_STRING_KEYS[word], self.string())
        if word in _DATE_KEYS:
            p.sp()
            return (_DATE_KEYS[word], p.date())
        if word == "ALL":
            return ("all",)
        if word in ("RECENT", "NEW", "OLD"):
            return recent.search_key(self.view, word)
        if word in ("KEYWORD", "UNKEYWORD"):
            p.sp()
            return ("flag", p.flag(), word == "KEYWORD")
        if word == "HEADER":
            name = self.string()
            return ("header", name.lower(), self.string())
        if word in ("LARGER", "SMALLER"):
            p.sp()
            return (word.lower(), p.number())
        if word == "NOT":
            p.sp()
            return ("not", self.key(depth + 1))
        if word == "OR":
            p.sp()
            a = self.key(depth + 1)
            p.sp()
            return ("or", a, self.key(depth + 1))
        if word == "UID":
            p.sp()
            seqset = p.seqset()
            if isinstance(seqset, SavedSet):
                return self.saved()
            top = self.view.uids[-1] if self.view.uids else 0
            ranges = seqset.resolve(top) if top else []
            return ("uid", ranges) if ranges else NOTHING
        if word == "MODSEQ":
            p.sp()
            if p.peek() == ord('"'):  # entry-name entry-type-req: per-flag modseqs are not kept
                p.quoted()
                p.sp()
                p.keyword()
                p.sp()
            self.modseq = True
            return ("modseq", p.number())
        raise ParseError(f"unknown search key {word}")


def charset(p: Parser, required: bool = False) -> None:
    """``CHARSET x SP`` (SEARCH; ``x SP`` alone for SORT and THREAD): UTF-8 and US-ASCII only."""
    if not required:
        if p.line[p.pos:p.pos + 8].upper() != b"CHARSET ":
            return
        p.keyword()
        p.sp()
    name = p.astring().decode("ascii", "replace").upper()
    if name not in CHARSETS:
        raise No("Unsupported charset", "BADCHARSET (" + " ".join(CHARSETS) + ")")
    p.sp()


def compile_search(p: Parser, view: SelectedMailbox, charset_required: bool = False) -> tuple[Search, bool]:
    """Parse ``[CHARSET x] keys`` into a Search; the flag says whether MODSEQ was used."""
    charset(p, charset_required)
    compiler = _Compiler(p, view)
    tree = compiler.keys()
    p.end()
    return Search(tree), compiler.modseq


def visible(view: SelectedMailbox, found: list[int]) -> list[int]:
    """The store's UIDs that this session's view shows (not newer, not already expunged)."""
    seq = numbering(view, found)
    gone = view.gone or ()
    return [u for u in found if seq(u) and u not in gone]


async def highest_modseq(conn: Any, hits: list[int]) -> int:
    """The highest MODSEQ among ``hits`` (RFC 7162 §3.1.5), 0 for none."""
    if not hits:
        return 0
    conn.condstore = True
    wanted = set(hits)
    changes = await conn.store.changed_since(conn.selected.mailbox_id, 0)
    return max((c.modseq for c in changes if c.uid in wanted), default=0)


async def run_search(conn: Any, tag: str, p: Parser, uid: bool) -> str:
    view = conn.selected
    options = esearch.return_options(p)
    if options is None and conn.rev2:
        options = ["ALL"]  # RFC 9051 §6.4.4: a rev2 SEARCH answers ESEARCH, ALL when nothing is asked
    try:
        query, with_modseq = compile_search(p, view)
        found = await conn.store.search(view.mailbox_id, query) if view.uids else []
    except BaseException:
        if options is not None and "SAVE" in options:
            view.saved = []  # RFC 5182 §2.1: a failed SEARCH ... SAVE empties $
        raise
    if with_modseq:
        conn.condstore = True  # RFC 7162 §3.1: CONDSTORE-enabling, with or without hits
    hits = visible(view, found)
    modseq = await highest_modseq(conn, _reported(options, hits)) if with_modseq else 0
    if options is not None:
        esearch.respond(conn, tag, view, options, hits, uid, modseq)
    else:
        line = "SEARCH" + "".join(f" {n}" for n in numbers(view, hits, uid))
        conn.untagged(line + (f" (MODSEQ {modseq})" if modseq else ""))
    return ("UID SEARCH" if uid else "SEARCH") + " completed"


def _reported(options: list[str] | None, hits: list[int]) -> list[int]:
    """The messages a MODSEQ result speaks for: with only MIN and/or MAX asked, just those
    (RFC 7162 §3.1.5); otherwise every hit."""
    if not options or {"ALL", "COUNT"} & set(options) or not {"MIN", "MAX"} & set(options) or not hits:
        return hits
    return ([hits[0]] if "MIN" in options else []) + ([hits[-1]] if "MAX" in options else [])


register("SEARCH", run_search)
