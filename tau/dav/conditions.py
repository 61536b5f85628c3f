"""Conditional requests: the WebDAV If header (RFC 4918 §10.4) and RFC 7232 preconditions.

``parse_if`` turns ``If: <http://h/a> (<opaquelocktoken:x> ["etag"]) (Not <DAV:no-lock>)`` into
lists of conditions; ``evaluate_if`` is true when any list holds for its resource. Every state
token mentioned counts as submitted (§10.4.1), which is how a client proves it holds a lock.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import lru_cache

from tau.dav.errors import DavError


@dataclass
class Condition:
    negated: bool
    kind: str  # "token" | "etag"
    value: str


@dataclass
class IfList:
    tag: str | None  # the Resource-Tag URL, None for the request URI
    conditions: list[Condition] = field(default_factory=list)


_TOKEN = re.compile(r"\s*(?:(<[^>]*>)|(\()|(\))|(\[[^\]]*\])|([Nn][Oo][Tt])\b)")


def parse_if(header: str | None) -> list[IfList]:
    """Parse the If header; 400 for malformed syntax."""
    if not header:
        return []
    lists: list[IfList] = []
    tag: str | None = None
    pos, current = 0, None
    negate = False
    while pos < len(header):
        if header[pos:].strip() == "":
            break
        m = _TOKEN.match(header, pos)
        if m is None:
            raise DavError(400, "malformed If header")
        pos = m.end()
        coded, open_, close, etag, not_ = m.groups()
        if open_:
            if current is not None:
                raise DavError(400, "malformed If header: nested list")
            current = IfList(tag)
        elif close:
            if current is None or not current.conditions or negate:
                raise DavError(400, "malformed If header: empty list")
            lists.append(current)
            current = None
        elif not_:
            if current is None or negate:
                raise DavError(400, "malformed If header: stray Not")
            negate = True
        elif coded:
            if current is None:  # a Resource-Tag
                tag = coded[1:-1].strip()
            else:
                current.conditions.append(Condition(negate, "token", coded[1:-1].strip()))
                negate = False
        elif etag:
            if current is None:
                raise DavError(400, "malformed If header: entity tag outside a list")
            current.conditions.append(Condition(negate, "etag", etag[1:-1].strip()))
            negate = False
    if current is not None or not lists:
        raise DavError(400, "malformed If header")
    return lists


def submitted_tokens(lists: list[IfList]) -> set[str]:
    return {c.value for lst in lists for c in lst.conditions if c.kind == "token"}


@dataclass
class State:
    """What a condition is evaluated against: the resource's etag and its current lock tokens."""

    etag: str | None
    tokens: set[str]


async def evaluate_if(lists: list[IfList], state_of: Callable[[str | None], Awaitable[State]]) -> bool:
    """True when there is no If header or when any list holds (RFC 4918 §10.4.2)."""
    if not lists:
        return True
    for lst in lists:
        state = await state_of(lst.tag)
        ok = True
        for cond in lst.conditions:
            if cond.kind == "token":
                hit = cond.value in state.tokens
            else:
                hit = state.etag is not None and _strip_weak(cond.value) == _strip_weak(state.etag)
            if hit == cond.negated:
                ok = False
                break
        if ok:
            return True
    return False


def _strip_weak(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def _etag_list(header: str) -> list[str]:
    return [t.strip() for t in re.findall(r'(?:W/)?"[^"]*"|\*', header)]


def check_preconditions(headers: Callable[[str], str | None], etag: str | None, exists: bool,
                        last_modified: float | None, read: bool) -> int | None:
    """RFC 7232 §6 in order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.

    Raises 412 for a failed precondition; returns 304 when a GET/HEAD may answer Not Modified.
    """
    if_match = headers("if-match")
    if if_match is not None:
        tags = _etag_list(if_match)
        if not exists or ("*" not in tags and (etag is None or etag not in tags)):
            raise DavError(412, "If-Match failed")
    elif (ius := headers("if-unmodified-since")) is not None and exists and last_modified is not None:
        when = _http_date(ius)
        if when is not None and int(last_modified) > when:
            raise DavError(412, "If-Unmodified-Since failed")
    if_none = headers("if-none-match")
    if if_none is not None:
        tags = _etag_list(if_none)
        matched = exists and ("*" in tags or (etag is not None and _strip_weak(etag) in
                                              {_strip_weak(t) for t in tags}))
        if matched:
            if read:
                return 304
            raise DavError(412, "If-None-Match failed")
    elif read and (ims := headers("if-modified-since")) is not None and exists and last_modified is not None:
        when = _http_date(ims)
        if when is not None and int(last_modified) <= when:
            return 304
    return None


def _http_date(value: str) -> int | None:
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(epoch: float) -> str:
    """IMF-fixdate (RFC 7231 §7.1.1.1); what ``email.utils.formatdate(usegmt=True)`` gives, faster
    (a listing's files mostly share a handful of distinct seconds)."""
    return _http_date_of(int(epoch))


@lru_cache(maxsize=4096)
def _http_date_of(epoch: int) -> str:
    t = time.gmtime(epoch)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
