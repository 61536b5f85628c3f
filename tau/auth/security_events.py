"""Recent security events (failed and throttled logins, rate limits, admin actions) for the admin page.

Until now these were only log lines (``login_failed``, ``login_throttled``); an operator without
log access could not see them. A bounded ring in memory is enough for "what happened lately":
it costs nothing on the login path, cannot grow under a guessing attack, and each node keeps its
own (like the throttle itself). The log lines stay the durable record for fail2ban and grep.
"""

from __future__ import annotations

from collections import deque
from typing import Any

MAX_EVENTS = 500


class SecurityEvents:
    def __init__(self, clock: Any, size: int = MAX_EVENTS) -> None:
        self._clock = clock
        self._ring: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0
        self._last: dict[str, float] = {}
        self._bound = 10 * size

    def record(self, kind: str, **fields: Any) -> None:
        """``kind``: login_failed | login_throttled | rate_limited | invite_accepted | admin_action;
        ``fields`` are JSON values."""
        self._seq += 1
        self._ring.append({"id": self._seq, "at": int(self._clock.seconds()), "kind": kind, **fields})

    def record_once(self, kind: str, key: str, within: float, **fields: Any) -> None:
        """``record`` unless ``key`` was recorded in the last ``within`` seconds: a flood of refused
        requests is one event per source and window, and cannot push everything else out."""
        now = self._clock.seconds()
        if now - self._last.get(key, float("-inf")) < within:
            return
        if len(self._last) >= self._bound:
            self._last = {k: t for k, t in self._last.items() if now - t < within}
        self._last[key] = now
        self.record(kind, **fields)

    def recent(self, limit: int = 100, kind: str | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        out = []
        for event in reversed(self._ring):
            if kind is None or event["kind"] == kind:
                out.append(dict(event))
                if len(out) >= limit:
                    break
        return out
