"""A small TTL cache for DNS answers (RFC 1035 §7.4, negative answers RFC 2308 §5).

Every outbound delivery asks for the MX of the domain and the addresses of the MX host, and every
inbound message asks for SPF and DMARC records: at hundreds of messages a second that is hundreds
of UDP sockets a second (twisted.names opens one per query for source-port randomisation) for
answers that rarely change. An answer is kept for its smallest TTL; an empty answer (NODATA) or
NXDOMAIN for the SOA's negative TTL, ``min(SOA TTL, SOA MINIMUM)``. Temporary failures are never
kept. TTLs are capped (``MAX_TTL``) and the table is bounded (``MAX_ENTRIES``, oldest out first).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.names import dns

MAX_TTL = 3600
MAX_ENTRIES = 10_000


def answer_ttl(answers: Iterable[Any], authority: Iterable[Any]) -> int:
    """Seconds an answer may be reused: its smallest TTL, else the SOA negative TTL, else 0."""
    ttls = [int(rr.ttl) for rr in answers]
    if ttls:
        return max(0, min(min(ttls), MAX_TTL))
    for rr in authority:
        if rr.type == dns.SOA:
            return max(0, min(int(rr.ttl), int(rr.payload.minimum), MAX_TTL))
    return 0


class TTLCache:
    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}

    def get(self, key: tuple[str, str]) -> Any:
        """The stored value (a list of records or an exception to raise), or None."""
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[0] <= self._clock.seconds():
            del self._entries[key]
            return None
        return hit[1]

    def put(self, key: tuple[str, str], value: Any, ttl: int) -> None:
        if ttl <= 0:
            return
        self._entries.pop(key, None)
        while len(self._entries) >= MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (self._clock.seconds() + ttl, value)

    def clear(self) -> None:
        self._entries.clear()
