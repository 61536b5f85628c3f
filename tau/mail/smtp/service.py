"""Install the SMTP listeners: MX (``smtp``), ``submission`` (STARTTLS + AUTH), ``submissions``.

One factory per listener, sharing a per-IP connection limiter so one address cannot hold more
than ``MAX_PER_IP`` sessions across all three (a cheap guard against connection floods; RFC 5321
§4.5.3.2 lets a server refuse with 421 when it is busy).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import ServerFactory

from tau.mail.smtp.batch import GroupCommit
from tau.mail.smtp.delivery import Delivery, group_commit
from tau.mail.smtp.server import SMTPServer

MAX_PER_IP = 20
MAX_ERRORS = 10
MAX_RECIPIENTS = 100        # RFC 5321 §4.5.3.1.8: at least 100 must be accepted
TIMEOUT = 300               # RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes


class ConnectionLimiter:
    """Open connections per client IP."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, ip: str) -> bool:
        count = self._open.get(ip, 0)
        if count >= self.limit:
            return False
        self._open[ip] = count + 1
        return True

    def release(self, ip: str) -> None:
        count = self._open.get(ip, 0) - 1
        if count > 0:
            self._open[ip] = count
        else:
            self._open.pop(ip, None)

    def count(self, ip: str) -> int:
        return self._open.get(ip, 0)


class SMTPFactory(ServerFactory):
    """Settings for every connection of one listener; tests may change the limits on an instance."""

    noisy = False

    def __init__(self, registry: Any, store: Any, kind: str, limiter: ConnectionLimiter | None = None,
                 tls: Any = None, commits: GroupCommit | None = None) -> None:
        if kind not in ("smtp", "submission", "submissions"):
            raise ValueError(f"unknown SMTP listener kind {kind!r}")
        self.registry = registry
        self.store = store
        self.kind = kind
        self.submission = kind != "smtp"
        self.implicit_tls = kind == "submissions"
        self.tls = tls
        self.hostname: str = registry.config.get("tau", "hostname")
        self.max_size: int = registry.config.get("limits", "message_size")
        self.max_errors = MAX_ERRORS
        self.max_recipients = MAX_RECIPIENTS
        self.timeout: int | None = TIMEOUT
        self.limiter = limiter or ConnectionLimiter(MAX_PER_IP)
        self.metrics = registry.metrics
        self.delivery = Delivery(registry, store, self.submission, commits)

    def buildProtocol(self, addr: Any) -> SMTPServer:
        return SMTPServer(self)


def install(registry: Any, host: Any) -> None:
    store = registry.mail_store
    limiter = ConnectionLimiter(MAX_PER_IP)
    commits = group_commit(registry, store)
    installed = []
    for kind in ("smtp", "submission", "submissions"):
        if host.listener_configured(kind):
            host.add_listener(kind, SMTPFactory(registry, store, kind, limiter, tls=registry.tls, commits=commits))
            installed.append(kind)
    if installed:
        registry.services["smtp"] = "ok"
