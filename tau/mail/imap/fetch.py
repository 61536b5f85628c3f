"""FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2; CONDSTORE MODSEQ and CHANGEDSINCE,
RFC 7162 §3.1.4; QRESYNC's VANISHED modifier, §3.2.6, in ``qresync.py``).

Metadata for the whole set comes from the store in a few queries (``store.fetch``) and ENVELOPE,
BODY and BODYSTRUCTURE are the strings rendered at delivery, so a 10,000-message header sync is
string concatenation written in large batches. Body sections read only their byte range from the
blob store. A non-PEEK body item sets ``\\Seen`` first and reports the new FLAGS (§6.4.5).
"""

from __future__ import annotations

import json
from typing import Any, cast

from tau.blobs.base import BlobNotFound
from tau.mail.mime import ParsedMessage, PartInfo
from tau.mail.store.api import MessageMeta

from . import binary, bodies, qresync, recent, stale
from .base import Bad, by_number_and_uid
from .binary import BinaryItem
from .bodies import BodyItem
from .parser import ParseError, Parser
from .response import internal_date

_ITEM_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")
FLAGS_ONLY = {"UID", "FLAGS", "MODSEQ"}  # items served from the flag rows alone
SIMPLE = {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "MODSEQ"}
MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
BATCH = 1000          # messages per transport write (metadata only)
BODY_BATCH = 64       # messages per blob read job
BODY_BATCH_BYTES = 4 * 1024 * 1024
STREAM_THRESHOLD = 1024 * 1024  # bigger messages are sent one at a time, big sections streamed

Item = str | BodyItem | BinaryItem


def _item(p: Parser) -> Item:
    word = p.take_while(_ITEM_CHARS).decode("ascii").upper()
    if word in ("BODY", "BODY.PEEK") and p.take(b"["):
        return bodies.parse_section(p, peek=word == "BODY.PEEK")
    if word in ("BINARY", "BINARY.PEEK", "BINARY.SIZE") and p.take(b"["):
        return binary.parse_binary(p, word)
    if word == "RFC822":
        return bodies.RFC822
    if word == "RFC822.HEADER":
        return bodies.RFC822_HEADER
    if word == "RFC822.TEXT":
        return bodies.RFC822_TEXT
    if word in SIMPLE:
        return word
    raise ParseError(f"unknown FETCH item {word or chr(max(p.peek(), 32))!r}")


def parse_items(p: Parser) -> list[Item]:
    """``fetch-att`` list, a single item, or a macro (ALL, FAST, FULL)."""
    if p.take(b"("):
        items = [_item(p)]
        while p.take(b" "):
            items.append(_item(p))
        p.expect(b")")
        return items
    save = p.pos
    word = p.take_while(_ITEM_CHARS).decode("ascii").upper()
    if word in MACROS:
        return list(MACROS[word])
    p.pos = save
    return [_item(p)]


def parse_modifiers(p: Parser) -> tuple[int | None, bool]:
    """``(CHANGEDSINCE n [VANISHED])`` (RFC 7162 §3.1.4, §3.2.6): (changedsince, vanished)."""
    changedsince = None
    vanished = False
    p.expect(b"(")
    while True:
        mod = p.keyword()
        if mod == "CHANGEDSINCE":
            p.sp()
            changedsince = p.number()
        elif mod == "VANISHED":
            vanished = True
        else:
            raise ParseError(f"unknown FETCH modifier {mod}")
        if p.take(b")"):
            return changedsince, vanished
        p.sp()


async def run_fetch(conn: Any, p: Parser, uid: bool) -> str:
    seqset = p.seqset()
    p.sp()
    items = parse_items(p)
    changedsince, vanished = parse_modifiers(p) if p.take(b" ") else (None, False)
    p.end()
    if vanished and not (uid and conn.qresync and changedsince is not None):
        raise Bad("VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC (RFC 7162 section 3.2.6)")
    view = conn.selected
    uids = view.by_uid(seqset) if uid else view.by_seq(seqset)
    names = [i for i in items if isinstance(i, str)]
    body_items = [i for i in items if isinstance(i, BodyItem)]
    binary_items = [i for i in items if isinstance(i, BinaryItem)]
    want_modseq = "MODSEQ" in names or changedsince is not None
    if want_modseq:
        conn.condstore = True  # RFC 7162 §3.1: CONDSTORE-enabling
    if vanished:
        await qresync.fetch_vanished(conn, view, seqset, changedsince or 0)
    if changedsince is not None and uids:
        changed = {c.uid for c in await conn.store.changed_since(view.mailbox_id, changedsince)}
        uids = [u for u in uids if u in changed]
    need_parsed = any(not b.whole for b in body_items) or any(b.section for b in binary_items)
    flags_only = not body_items and not binary_items and set(names) <= FLAGS_ONLY
    metas = await _metas(conn, view, uids, need_parsed, flags_only)
    metas, lost = await stale.complete(conn, uids, metas, need_parsed)  # expunged by another session
    flags = await _implicit_seen(conn, metas, [*body_items, *binary_items])
    metas, flags = recent.before_fetch(conn, metas, flags)  # \Recent; FLAGS before a new keyword
    # RFC 7162 §3.1: once CONDSTORE is on, a FETCH that sets \Seen reports MODSEQ with the FLAGS
    order = _order(names, uid, want_modseq or (bool(flags) and conn.condstore), bool(flags))
    try:
        if body_items or binary_items:
            await _send_with_bodies(conn, metas, order, body_items, binary_items, flags)
        else:
            await _send_metadata(conn, metas, order, flags)
    except BlobNotFound:  # purged meanwhile (stale.py)
        lost = True
    if lost:
        raise stale.expunge_issued()
    return ("UID FETCH" if uid else "FETCH") + " completed"


by_number_and_uid("FETCH", run_fetch)


async def _metas(conn: Any, view: Any, uids: list[int], need_parsed: bool, flags_only: bool) -> list[MessageMeta]:
    """What the items need of ``uids``: a flag resync (``FETCH 1:* (UID FLAGS)``) reads only the
    narrow flag rows, its metas carrying nothing but UID, flags and MODSEQ."""
    if not uids:
        return []
    if flags_only:
        return [MessageMeta(c.uid, c.modseq, c.flags, 0, 0, "", "", "", "")
                for c in await conn.store.flags_of(view.mailbox_id, uids)]
    return list(await conn.store.fetch(view.mailbox_id, uids, with_parsed=need_parsed))


def _order(names: list[str], uid: bool, modseq: bool, seen_changed: bool) -> list[str]:
    """Simple items in response order: UID first (always for UID FETCH), no duplicates."""
    out = ["UID"] if uid or "UID" in names else []
    for n in names:
        if n not in out and n != "MODSEQ":
            out.append(n)
    if seen_changed and "FLAGS" not in out:
        out.append("FLAGS")
    if modseq:
        out.append("MODSEQ")
    return out


async def _implicit_seen(conn: Any, metas: list[MessageMeta], body_items: list[Any]) -> dict[int, Any]:
    """Set \\Seen for non-PEEK body fetches; returns uid → (flags, modseq) of the changed ones."""
    view = conn.selected
    if view.readonly or all(b.peek for b in body_items):
        return {}
    unseen = [m.uid for m in metas if "\\Seen" not in m.flags]
    if not unseen:
        return {}
    result = await conn.store.store_flags(view.mailbox_id, unseen, "+", ["\\Seen"])
    out = {}
    for ch in result.changed:
        view.note_own(ch.uid, ch.modseq)
        out[ch.uid] = (ch.flags, ch.modseq)
    return out


def _items(m: MessageMeta, order: list[str], flags: dict[int, Any]) -> list[str]:
    parts = []
    for name in order:
        if name == "UID":
            parts.append(f"UID {m.uid}")
        elif name == "FLAGS":
            f = flags[m.uid][0] if m.uid in flags else m.flags
            parts.append("FLAGS (" + " ".join(f) + ")")
        elif name == "INTERNALDATE":
            parts.append("INTERNALDATE " + internal_date(m.internal_date))
        elif name == "RFC822.SIZE":
            parts.append(f"RFC822.SIZE {m.size}")
        elif name == "ENVELOPE":
            parts.append("ENVELOPE " + m.envelope)
        elif name == "BODYSTRUCTURE":
            parts.append("BODYSTRUCTURE " + m.bodystructure)
        elif name == "BODY":
            parts.append("BODY " + m.body)
        elif name == "MODSEQ":
            parts.append(f"MODSEQ ({flags[m.uid][1] if m.uid in flags else m.modseq})")
    return parts


async def _send_metadata(conn: Any, metas: list[MessageMeta], order: list[str], flags: dict[int, Any]) -> None:
    view = conn.selected
    for i in range(0, len(metas), BATCH):
        seq_of = view.seq_of
        chunk = "".join(f"* {seq_of(m.uid)} FETCH (" + " ".join(_items(m, order, flags)) + ")\r\n"
                        for m in metas[i:i + BATCH])
        conn.write(chunk.encode("utf-8"))
        await conn.drain()


async def _send_with_bodies(conn: Any, metas: list[MessageMeta], order: list[str], body_items: list[BodyItem],
                            binary_items: list[BinaryItem], flags: dict[int, Any]) -> None:
    view = conn.selected
    i = 0
    while i < len(metas):
        if metas[i].size > STREAM_THRESHOLD:
            try:
                await _stream_message(conn, metas[i], order, body_items, binary_items, flags)
            except BlobNotFound:  # purged mid-response: the half-sent literal cannot be completed
                conn.transport.loseConnection()
                raise
            i += 1
            continue
        batch: list[MessageMeta] = []
        budget = 0
        while (i < len(metas) and len(batch) < BODY_BATCH and (not batch or budget < BODY_BATCH_BYTES)
               and metas[i].size <= STREAM_THRESHOLD):
            batch.append(metas[i])
            budget += metas[i].size
            i += 1
        plans = []
        offsets = []
        wanted: list[tuple[str, int, int, int]] = []
        for m in batch:
            parsed = _parsed(m) if m.parsed_json else None
            offsets.append(parsed)
            plan = []
            for item in body_items:
                rng = bodies.byte_range(item, m.size, parsed)
                plan.append(None if rng is None else len(wanted))
                if rng is not None:
                    wanted.append((m.blob_key, m.size, rng[0], rng[1]))
            plans.append(plan)
        data = await bodies.read_ranges(conn, wanted)
        out: list[bytes] = []
        for m, plan, parsed in zip(batch, plans, offsets, strict=True):
            pieces = [s.encode("utf-8") for s in _items(m, order, flags)]
            for item, idx in zip(body_items, plan, strict=True):
                raw = None if idx is None else bodies.finish(item, data[idx])
                pieces.append(bodies.render(item, raw))
            for bitem in binary_items:
                pieces.append(await binary.render(conn, m.blob_key, m.size, parsed, bitem))
            out.append(b"* %d FETCH (%s)\r\n" % (view.seq_of(m.uid), b" ".join(pieces)))
        conn.write(b"".join(out))
        await conn.drain()


async def _stream_message(conn: Any, m: MessageMeta, order: list[str], body_items: list[BodyItem],
                          binary_items: list[BinaryItem], flags: dict[int, Any]) -> None:
    """One big message: large sections go out chunk by chunk from the blob store, never whole
    in memory, pausing whenever the transport's buffer is full."""
    parsed = _parsed(m) if m.parsed_json else None
    pieces = [s.encode("utf-8") for s in _items(m, order, flags)]
    conn.write(b"* %d FETCH (%s" % (conn.selected.seq_of(m.uid), b" ".join(pieces)))
    sep = b" " if pieces else b""
    for item in body_items:
        rng = bodies.byte_range(item, m.size, parsed)
        if rng is None:
            conn.write(sep + bodies.render(item, None))
        elif item.fields or rng[1] - rng[0] <= STREAM_THRESHOLD:
            data = await conn.store.read(m.blob_key, rng[0], rng[1]) if rng[1] > rng[0] else b""
            conn.write(sep + bodies.render(item, bodies.finish(item, data)))
        else:
            conn.write(sep + bodies.literal_head(item, rng[1] - rng[0]))
            async for chunk in conn.registry.blobs.open(m.blob_key, rng[0], rng[1]):
                conn.write(bodies.no_nul(chunk))
                await conn.drain()
        sep = b" "
        await conn.drain()
    for bitem in binary_items:
        conn.write(sep + await binary.render(conn, m.blob_key, m.size, parsed, bitem))
        sep = b" "
    conn.write(b")\r\n")


class _Offsets:
    """Just what ``section_range`` reads from a ParsedMessage (``size``, ``parts``): building the
    whole ParsedMessage per message would cost more than reading the header bytes."""

    __slots__ = ("parts", "size")

    def __init__(self, size: int, parts: tuple[PartInfo, ...]) -> None:
        self.size, self.parts = size, parts


def _parsed(m: MessageMeta) -> ParsedMessage | None:
    try:
        d = json.loads(m.parsed_json)
        parts = tuple(PartInfo(p[0], int(p[1]), int(p[2]), int(p[3]), p[4], bool(p[5]),
                               int(p[6]) if len(p) > 6 else -1) for p in d["parts"])
        return cast(ParsedMessage, _Offsets(int(d["size"]), parts))
    except (ValueError, KeyError, TypeError, IndexError):
        return None
