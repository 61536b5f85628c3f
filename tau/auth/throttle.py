"""Failed-login throttling per account and per IP, with exponential back-off.

After ``free`` failures a key is locked for ``base * 2**(n - free)`` seconds (capped); attempts
while locked are refused without checking the password, so a guesser cannot use the time. An
account's lock is keyed by (account, IP) as well as the account alone with a larger allowance,
so a remote guesser slows down an account without locking its owner out from their own address.
Counters decay after ``window`` seconds without failures. In memory: on several nodes each node
throttles on its own (Redis-backed counters come with the cluster issue).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from tau.auth.security_events import SecurityEvents

log = Logger()


@dataclass
class _Entry:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


@dataclass(frozen=True)
class Policy:
    free: int
    base: float
    cap: float
    window: float


IP_POLICY = Policy(free=10, base=1.0, cap=900.0, window=3600.0)
ACCOUNT_POLICY = Policy(free=20, base=1.0, cap=300.0, window=3600.0)
PAIR_POLICY = Policy(free=5, base=1.0, cap=900.0, window=3600.0)
MAX_ENTRIES = 100_000


class LoginThrottle:
    def __init__(self, clock: Any, events: SecurityEvents | None = None) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        #: what the admin page lists as recent security events (tau.auth.security_events)
        self.events = events if events is not None else SecurityEvents(clock)

    def _keys(self, account: str, ip: str | None) -> list[tuple[tuple[str, str], Policy]]:
        keys = [(("acct", account), ACCOUNT_POLICY)]
        if ip:
            keys += [(("ip", ip), IP_POLICY), (("pair", f"{account}|{ip}"), PAIR_POLICY)]
        return keys

    def retry_after(self, account: str, ip: str | None) -> float:
        """Seconds until an attempt is allowed again (0: go ahead)."""
        now = self._clock.seconds()
        wait = 0.0
        for key, _policy in self._keys(account, ip):
            entry = self._entries.get(key)
            if entry is not None and entry.locked_until > now:
                wait = max(wait, entry.locked_until - now)
        return wait

    def failure(self, account: str, ip: str | None) -> None:
        now = self._clock.seconds()
        if len(self._entries) > MAX_ENTRIES:
            self._prune(now)
        for key, policy in self._keys(account, ip):
            entry = self._entries.setdefault(key, _Entry())
            if now - entry.last > policy.window:
                entry.failures = 0
            entry.failures += 1
            entry.last = now
            if entry.failures > policy.free:
                delay = min(policy.cap, policy.base * 2 ** (entry.failures - policy.free - 1))
                entry.locked_until = now + delay
        log.warn("login_failed account={account} ip={ip}", account=account, ip=ip)
        self.events.record("login_failed", account=account[:254], ip=ip)

    def refused(self, account: str, ip: str | None, wait: float) -> None:
        """An attempt turned away while locked (the password was not even checked)."""
        log.warn("login_throttled account={account} ip={ip} retry_after={wait:.0f}",
                 account=account, ip=ip, wait=wait)
        self.events.record("login_throttled", account=account[:254], ip=ip, retry_after=int(wait) + 1)

    def success(self, account: str, ip: str | None) -> None:
        self._entries.pop(("pair", f"{account}|{ip}"), None)
        entry = self._entries.get(("acct", account))
        if entry is not None and entry.locked_until <= self._clock.seconds():
            self._entries.pop(("acct", account), None)

    def _prune(self, now: float) -> None:
        stale = [k for k, e in self._entries.items() if e.locked_until <= now and now - e.last > 60]
        for k in stale:
            del self._entries[k]
