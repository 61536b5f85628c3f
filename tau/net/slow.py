"""Deadlines for slow senders: a line (or header block) and a phase (message, command) must
arrive within a bounded time, however slowly the bytes trickle in.

An idle timeout is reset by every byte, so a client sending one byte every few seconds ("slowloris")
holds a session forever. The protocols here tell ``SlowSender`` when a partial line is waiting and
when a phase (SMTP DATA, an IMAP command with its literals) is under way; it keeps one timer for
the earlier of the two deadlines and calls ``on_expire("line" | "phase")`` when one passes.
Cheap on the hot path: a deadline is stamped once per line, the timer is only moved earlier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class SlowSender:
    def __init__(self, clock: Any, on_expire: Callable[[str], None]) -> None:
        self._clock = clock
        self._on_expire = on_expire
        self._line_due: float | None = None
        self._phase_due: float | None = None
        self._call: Any = None

    def line(self, limit: float | None) -> None:
        """A partial line is buffered (``limit``: seconds it may take), or none is (None)."""
        self._line_due = self._deadline(self._line_due, limit)

    def line_done(self) -> None:
        self._line_due = None

    def phase(self, limit: float | None) -> None:
        """A phase is under way (``limit``: seconds it may take in all), or none is (None)."""
        self._phase_due = self._deadline(self._phase_due, limit)

    def stop(self) -> None:
        self._line_due = self._phase_due = None
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _deadline(self, due: float | None, limit: float | None) -> float | None:
        """The deadline from now on: none (no limit), the one running, or a new one, armed."""
        if limit is None:
            return None
        if due is None:
            due = self._clock.seconds() + limit
            self._arm(due)
        return due

    def _arm(self, due: float) -> None:
        delay = max(0.0, due - self._clock.seconds())
        if self._call is None or not self._call.active():
            self._call = self._clock.callLater(delay, self._fire)
        elif self._call.getTime() > due:
            self._call.reset(delay)

    def _fire(self) -> None:
        self._call = None
        now = self._clock.seconds()
        if self._line_due is not None and self._line_due <= now:
            self.stop()
            self._on_expire("line")
        elif self._phase_due is not None and self._phase_due <= now:
            self.stop()
            self._on_expire("phase")
        else:
            pending = [d for d in (self._line_due, self._phase_due) if d is not None]
            if pending:
                self._arm(min(pending))
