"""When the SMTP listeners last took part in a mail transaction, for background work that should
give way to them: the outbound delivery worker paces the deliveries it starts while mail is being
accepted (``tau.mail.outbound.pacing``), because a sending MTA or a user's mail client is waiting
for each 250 and a queue of outgoing mail is not.
"""

from __future__ import annotations

from typing import Any


class Activity:
    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._last = float("-inf")

    def mark(self) -> None:
        """A recipient was given or a message's data arrived, just now."""
        self._last = self._clock.seconds()

    def recent(self, window: float) -> bool:
        """Was there any within the last ``window`` seconds?"""
        return self._clock.seconds() - self._last < window
