"""Install the SMTP listeners: MX (``smtp``), ``submission`` (STARTTLS + AUTH), ``submissions``.

One factory per listener. Connections per client address are capped for every listener by
``AppHost.add_listener`` (tau.app.connlimit, ``[limits] smtp_connections_per_ip``, trusted networks
exempt), which answers with the factory's ``refusal`` line (RFC 5321 §4.5.3.2 lets a server
refuse with 421 when it is busy). A ``ConnectionLimiter`` given to a factory is an extra, in-protocol
cap without exemptions (tests, embedding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.protocol import ServerFactory

from tau.mail.smtp.batch import GroupCommit
from tau.mail.smtp.delivery import Delivery, group_commit
from tau.mail.smtp.server import SMTPServer

if TYPE_CHECKING:
    from tau.registry import Registry

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
    #: what CappedFactory says to a client over the connection caps
    refusal = b"421 4.7.0 Too many connections from your address; try again later\r\n"

    def __init__(self, registry: Registry, store: Any, kind: str, limiter: ConnectionLimiter | None = None,
                 tls: Any = None, commits: GroupCommit | None = None) -> None:
        if kind not in ("smtp", "submission", "submissions"):
            raise ValueError(f"unknown SMTP listener kind {kind!r}")
        self.registry = registry
        self.store = store
        self.kind = kind
        self.submission = kind != "smtp"
        self.implicit_tls = kind == "submissions"
        self.tls = tls
        self.hostname: str = registry.config.tau.hostname
        self.max_size: int = registry.config.limits.message_size
        self.max_errors = MAX_ERRORS
        self.max_recipients = MAX_RECIPIENTS
        self.timeout: int | None = TIMEOUT
        self.limiter = limiter
        limits = registry.config.limits
        self.line_timeout: float = limits.line_timeout
        self.data_timeout: float = limits.data_timeout
        self.metrics = registry.metrics
        self.delivery = Delivery(registry, store, self.submission, commits)

    def buildProtocol(self, addr: Any) -> SMTPServer:
        return SMTPServer(self)


def install(registry: Registry, host: Any) -> None:
    store = registry.mail_store
    commits = group_commit(registry, store)
    installed = []
    for kind in ("smtp", "submission", "submissions"):
        if host.listener_configured(kind):
            host.add_listener(kind, SMTPFactory(registry, store, kind, tls=registry.tls, commits=commits))
            installed.append(kind)
    if installed:
        registry.services["smtp"] = "ok"
        spam = registry.config.spam
        if spam.rspamd_url:
            from tau.mail.trust import rspamd

            timeout = float(min(spam.timeout, 2))
            registry.health_checks["rspamd"] = lambda: defer.Deferred.fromCoroutine(
                rspamd.ping(spam.rspamd_url, timeout))
