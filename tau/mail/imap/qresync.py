"""QRESYNC (RFC 7162 §3.2): ``ENABLE QRESYNC``, the ``QRESYNC`` SELECT/EXAMINE parameter with
``* VANISHED (EARLIER)`` and the FETCH of changed flags, and UID FETCH's ``VANISHED`` modifier.

Expunged UIDs come from the store's tombstones (``tau.mail.store.tombstones``). Those are pruned
to the latest ones per mailbox; when a client resynchronises from a MODSEQ older than the pruned
ones, the answer is not exact and every UID the client may know of (its known-uids, or 1 up to
UIDNEXT-1) that is not in the mailbox any more is reported as vanished, narrowed by the
client's sequence match data (§3.2.5.2) when it sent some. Reporting a UID that vanished
before the client's MODSEQ is allowed; missing one is not.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .base import Bad
from .parser import Parser, SeqSet
from .session import SelectedMailbox

Ranges = list[tuple[int, int]]
#: seq-match pairs considered; more is no help in narrowing VANISHED (§3.2.5.2 suggests a sample)
MAX_MATCH = 10_000
MAX_UID = 4294967295


@dataclass(frozen=True)
class Resync:
    """``QRESYNC (uidvalidity modseq [known-uids] [(known-seqs known-uids)])`` of SELECT/EXAMINE."""

    uidvalidity: int
    modseq: int
    known: SeqSet | None = None
    match_seqs: SeqSet | None = None
    match_uids: SeqSet | None = None


def enable(conn: Any) -> bool:
    """``ENABLE QRESYNC`` (implies CONDSTORE, §3.2.3); False if it already was."""
    if conn.qresync:
        return False
    conn.qresync = conn.condstore = True
    if conn.selected is not None:
        conn.selected.qresync = True
    return True


def parse_select_params(conn: Any, p: Parser) -> Resync | None:
    """The optional ``(CONDSTORE)`` / ``(QRESYNC (...))`` list after the mailbox name."""
    resync = None
    p.expect(b"(")
    while not p.take(b")"):
        param = p.keyword()
        if param == "CONDSTORE":
            conn.condstore = True
        elif param == "QRESYNC":
            if not conn.qresync:
                raise Bad("QRESYNC is not enabled (ENABLE QRESYNC first)")
            p.sp()
            resync = _parse_resync(p)
        else:
            raise Bad(f"unknown SELECT parameter {param}")
        p.take(b" ")
    return resync


def _parse_resync(p: Parser) -> Resync:
    p.expect(b"(")
    uidvalidity = p.number(nz=True)
    p.sp()
    modseq = p.number(nz=True)
    known = seqs = uids = None
    if p.take(b" "):
        if p.peek() != ord("("):
            known = p.seqset()
            p.take(b" ")
        if p.take(b"("):
            seqs = p.seqset()
            p.sp()
            uids = p.seqset()
            p.expect(b")")
    p.expect(b")")
    return Resync(uidvalidity, modseq, known, seqs, uids)


# -- ranges --------------------------------------------------------------------------------------
def merged(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def within(uids: Sequence[int], ranges: Ranges) -> list[int]:
    """The ``uids`` (ascending) inside the merged ``ranges``."""
    out: list[int] = []
    for lo, hi in ranges:
        out.extend(uids[bisect_left(uids, lo):bisect_right(uids, hi)])
    return out


def absent(ranges: Ranges, present: Sequence[int]) -> Ranges:
    """The parts of the merged ``ranges`` holding none of ``present`` (ascending)."""
    out: Ranges = []
    for lo, hi in ranges:
        start = lo
        for u in present[bisect_left(present, lo):bisect_right(present, hi)]:
            if u > start:
                out.append((start, u - 1))
            start = u + 1
        if start <= hi:
            out.append((start, hi))
    return out


def render(ranges: Ranges) -> str:
    return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in ranges)


def singles(uids: Sequence[int]) -> Ranges:
    return merged([(u, u) for u in uids])


# -- answering -----------------------------------------------------------------------------------
async def vanished_earlier(conn: Any, view: SelectedMailbox, modseq: int, scope: Ranges,
                           floor_uid: int = 0, cap: int = MAX_UID) -> str | None:
    """``VANISHED (EARLIER) ...`` for UIDs in ``scope`` expunged after ``modseq``; None if none.

    UIDs still in the session's view are left out: they are reported (as VANISHED) when the
    session learns of their removal, so EXISTS and the client's count agree. Without exact
    tombstones only UIDs in ``floor_uid + 1 .. cap`` are considered.
    """
    exact, gone = await conn.store.vanished_since(view.mailbox_id, modseq)
    if exact:
        found = singles([u for u in within(gone, scope) if view.seq_of(u) == 0])
    else:
        scope = [(max(lo, floor_uid + 1), min(hi, cap)) for lo, hi in scope if hi > floor_uid and lo <= cap]
        found = absent(scope, view.uids)
    return "VANISHED (EARLIER) " + render(found) if found else None


def _match_floor(view: SelectedMailbox, r: Resync) -> int:
    """Highest UID below which the client's view provably lost nothing (§3.2.5.2), 0 if none."""
    if r.match_seqs is None or r.match_uids is None:
        return 0
    seqs = _expand(r.match_seqs)
    uids = _expand(r.match_uids)
    if seqs is None or uids is None or len(seqs) != len(uids):
        return 0
    best = 0
    for seq, uid in zip(seqs, uids, strict=True):
        if view.seq_of(uid) == seq:
            best = uid
        else:
            break
    return best


def _expand(s: SeqSet) -> list[int] | None:
    if any(a is None or b is None for a, b in s.ranges):
        return None
    total = sum(hi - lo + 1 for lo, hi in s.resolve(0))
    if total > MAX_MATCH:
        return None
    return [n for lo, hi in s.resolve(0) for n in range(lo, hi + 1)]


async def after_select(conn: Any, view: SelectedMailbox, uidnext: int, r: Resync) -> list[str]:
    """The untagged responses of a QRESYNC SELECT after the usual ones (§3.2.5.1)."""
    if r.uidvalidity != view.uidvalidity:
        return []  # a plain (CONDSTORE) SELECT: the client must resync from scratch
    top = max(uidnext - 1, view.uids[-1] if view.uids else 0)
    if top < 1:
        return []
    scope = merged(r.known.resolve(top)) if r.known is not None else [(1, top)]
    lines = []
    vanished = await vanished_earlier(conn, view, r.modseq, scope, _match_floor(view, r))
    if vanished:
        lines.append(vanished)
    starts = [lo for lo, _ in scope]
    for ch in await conn.store.changed_since(view.mailbox_id, r.modseq):
        seq = view.seq_of(ch.uid)
        i = bisect_right(starts, ch.uid) - 1
        if seq and i >= 0 and ch.uid <= scope[i][1]:
            lines.append(f"{seq} FETCH (UID {ch.uid} FLAGS ({' '.join(ch.flags)}) MODSEQ ({ch.modseq}))")
    return lines


async def fetch_vanished(conn: Any, view: SelectedMailbox, seqset: SeqSet, changedsince: int) -> None:
    """UID FETCH ``(CHANGEDSINCE n VANISHED)`` (§3.2.6): the vanished UIDs of the set, first."""
    top = view.uids[-1] if view.uids else 0
    # ``*`` reaches past the highest UID present: messages above it may have vanished too
    line = await vanished_earlier(conn, view, changedsince, merged(seqset.resolve(MAX_UID)), cap=top)
    if line:
        conn.untagged(line)
