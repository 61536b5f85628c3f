"""systemd readiness and watchdog (sd_notify(3)) without libsystemd.

READY=1 once every listener is bound, STOPPING=1 when shutdown starts, WATCHDOG=1 every half
of ``WATCHDOG_USEC`` while the reactor turns — a wedged reactor stops the pings and systemd
restarts the unit. Without ``NOTIFY_SOCKET`` (not under systemd) every call does nothing.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet.task import LoopingCall


def _address() -> str | None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr or addr[0] not in ("/", "@"):
        return None
    return "\0" + addr[1:] if addr[0] == "@" else addr


def notify(state: str, wait: float = 0.0) -> bool:
    """Send one datagram; returns False when not under systemd or the send failed.

    By default it never blocks the reactor: if systemd (or a test) is not reading and the datagram
    queue is full (net.unix.max_dgram_qlen is often 10), a watchdog ping is simply dropped. State
    changes that matter once (STOPPING=1) pass ``wait`` to give the reader that long to make room.
    """
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(wait if wait > 0 else 0.0)
            sock.connect(address)
            sock.send(state.encode())
        return True
    except OSError:
        return False


class Notifier:
    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._watchdog: LoopingCall | None = None

    def ready(self, status: str = "") -> None:
        notify(f"READY=1\nMAINPID={os.getpid()}" + (f"\nSTATUS={status}" if status else ""))
        usec = os.environ.get("WATCHDOG_USEC", "")
        if usec.isdigit() and int(usec) > 0 and os.environ.get("WATCHDOG_PID", str(os.getpid())) == str(os.getpid()):
            self._watchdog = LoopingCall(notify, "WATCHDOG=1")
            self._watchdog.clock = self._reactor
            self._watchdog.start(int(usec) / 2e6, now=True)

    def stopping(self) -> None:
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        notify("STOPPING=1", wait=1.0)

    def reloading(self, done: bool) -> None:
        notify("READY=1" if done else "RELOADING=1")
