"""The delivery worker gives way to SMTP acceptance.

A sending MTA or a user's mail client waits for each 250 while mail is accepted; a queue being
emptied waits for nobody. Both run in one process (one reactor thread, one GIL) and, on SQLite,
behind one database writer, so a worker draining a large queue as fast as it can takes a large
share of what acceptance needs (issue 4: a draining queue of 10,000 may slow acceptance by at most
20 %). So while the SMTP listeners have had a transaction within ``BUSY_WINDOW`` seconds
(``tau.mail.smtp.activity``), deliveries start at most ``BUSY_RATE`` a second (a token bucket
holding ``BURST``) and their outcomes are committed at most every ``BUSY_FLUSH`` seconds (fewer
turns at the database writer that acceptance waits on); concurrency is not cut. Deliveries to
real remote hosts take tens to hundreds of milliseconds each, so a worker rarely reaches that
rate anyway: the cap only binds when the queue would otherwise be drained flat out (a large
backlog, a nearby relay) — exactly when it would crowd acceptance out. A server that receives
mail all day still empties its queue at ``BUSY_RATE`` a second or more.
"""

from __future__ import annotations

from typing import Any

BUSY_WINDOW = 1.0
BUSY_RATE = 50.0
BUSY_FLUSH = 0.1
BURST = 10.0


class Pacer:
    def __init__(self, clock: Any, activity: Any) -> None:
        self._clock = clock
        self._activity = activity
        self._tokens = BURST
        self._stamp = clock.seconds()

    @property
    def busy(self) -> bool:
        return bool(self._activity.recent(BUSY_WINDOW))

    def flush_delay(self) -> float:
        """How long outcomes may wait for company before they are committed (``recorder``)."""
        from tau.mail.outbound.recorder import FLUSH_DELAY

        return BUSY_FLUSH if self.busy else FLUSH_DELAY

    def take(self) -> float:
        """0 when one more delivery may start now (and it is counted), else the seconds to wait."""
        now = self._clock.seconds()
        self._tokens = min(BURST, self._tokens + (now - self._stamp) * BUSY_RATE)
        self._stamp = now
        if not self.busy:
            return 0.0
        if self._tokens >= 1 - 1e-9:                 # (float sums of waits land a hair short)
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return (1 - self._tokens) / BUSY_RATE
