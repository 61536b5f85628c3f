"""STORE and UID STORE (RFC 3501 §6.4.6, §6.4.8) with ``.SILENT`` and CONDSTORE's
``UNCHANGEDSINCE`` / ``[MODIFIED]`` (RFC 7162 §3.1.3).

Without ``.SILENT`` every message in the set is reported with its flags (changed or not); once
CONDSTORE is in use the FETCH responses carry MODSEQ, and they are sent even with ``.SILENT``.
"""

from __future__ import annotations

from typing import Any

from . import recent
from .base import No, by_number_and_uid
from .keywords import announce
from .parser import ParseError, Parser
from .response import compress_uids

SYSTEM = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"}


def parse_store_args(p: Parser) -> tuple[int | None, str, bool, list[str]]:
    unchanged_since = None
    if p.take(b"("):
        mod = p.keyword()
        if mod != "UNCHANGEDSINCE":
            raise ParseError(f"unknown STORE modifier {mod}")
        p.sp()
        unchanged_since = p.number()
        p.expect(b")")
        p.sp()
    mode = "+" if p.take(b"+") else "-" if p.take(b"-") else "="
    what = p.keyword()
    if what not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError("expected FLAGS or FLAGS.SILENT")
    p.sp()
    flags = p.flag_list(parens_optional=True)
    p.end()
    for f in flags:
        if f.startswith("\\") and f not in SYSTEM and f != "\\Recent":
            raise ParseError(f"unknown system flag {f}")
    flags = [f for f in flags if f != "\\Recent"]  # session flag: not settable (§2.3.2)
    return unchanged_since, mode, what.endswith(".SILENT"), list(dict.fromkeys(flags))


async def run_store(conn: Any, p: Parser, uid: bool) -> str:
    seqset = p.seqset()
    p.sp()
    unchanged_since, mode, silent, flags = parse_store_args(p)
    view = conn.selected
    if view.readonly:
        raise No("Mailbox is read-only", "READ-ONLY")
    if unchanged_since is not None:
        conn.condstore = True  # RFC 7162 §3.1: CONDSTORE-enabling
    uids = view.by_uid(seqset) if uid else view.by_seq(seqset)
    if view.gone:
        uids = [u for u in uids if not view.is_gone(u)]
    if not uids:
        return ("UID STORE" if uid else "STORE") + " completed"
    result = await conn.store.store_flags(view.mailbox_id, uids, mode, flags, unchanged_since)
    modseq = conn.condstore
    report: dict[int, tuple[tuple[str, ...], int]] = {ch.uid: (ch.flags, ch.modseq) for ch in result.changed}
    if result.changed:
        view.note_own_many({ch.uid: ch.modseq for ch in result.changed})
        view.own_change(result.changed[0].modseq)  # one MODSEQ for the whole STORE
    refused = set(result.modified)
    if not silent:
        rest = [u for u in uids if u not in report and u not in refused]
        if rest:
            for c in await conn.store.flags_of(view.mailbox_id, rest):
                report[c.uid] = (c.flags, c.modseq)
    lines = []
    texts: dict[tuple[str, ...], str] = {}  # a few distinct flag lists: each joined once
    for u, seq in view.seqs_of(sorted(report)):
        flags_now, ms = report[u]
        if view.recent:
            flags_now = recent.with_recent(view, u, flags_now)
        items = [f"UID {u}"] if uid else []
        if not silent:
            text = texts.get(flags_now)
            if text is None:
                text = texts[flags_now] = "FLAGS (" + " ".join(flags_now) + ")"
            items.append(text)
        if modseq:
            items.append(f"MODSEQ ({ms})")
        if items and (not silent or (modseq and u not in refused)):
            lines.append(f"{seq} FETCH (" + " ".join(items) + ")")
    distinct = {flags_now for flags_now, _ in report.values()}  # a few lists, however many messages
    conn.untagged(*announce(view, (f for flags_now in distinct for f in flags_now)), *lines)
    if refused:
        numbers = sorted(refused) if uid else sorted(view.seq_of(u) for u in refused)
        return f"[MODIFIED {compress_uids(numbers)}] Conditional STORE failed"
    return ("UID STORE" if uid else "STORE") + " completed"


by_number_and_uid("STORE", run_store)
