"""Prometheus metrics (prometheus-client), one registry per daemon (no module globals).

Series: HTTP requests by method/route/status, request latency, errors, open connections per
protocol (``smtp``, ``imap``, ``http``, ``websocket``), database transaction time by name, logins by
protocol and outcome (``failed`` is the auth-failure count per protocol), and mail: the outbound
queue by state, delivery attempts by status, inbound messages accepted (per listener) and
rejected (per reason), SPF/DKIM/DMARC results and spam verdicts.

Values that live in the database (the queue depth) are read when ``/metrics`` is scraped, by the
``refreshers`` services register (``add_refresher``), not on a timer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Refresher = Callable[[], Awaitable[None]]


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter("tau_http_requests", "HTTP requests", ["method", "route", "status"], registry=r)
        self.http_latency = Histogram("tau_http_request_duration_seconds", "HTTP request latency",
                                      ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("tau_errors", "Errors by protocol and code", ["protocol", "code"], registry=r)
        self.connections = Gauge("tau_connections", "Open connections", ["protocol"], registry=r)
        self.db_latency = Histogram("tau_db_transaction_duration_seconds", "Database transactions",
                                    ["name", "outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.logins = Counter("tau_logins", "Login attempts", ["protocol", "outcome"], registry=r)
        self.rate_limited = Counter("tau_rate_limited", "Requests refused by rate limits", ["scope"], registry=r)
        self.atrest_pending = Gauge("tau_atrest_pending_rows", "Rows not yet sealed under their user's active"
                                    " data key (plaintext or a retired key), per table", ["table"], registry=r)
        self.atrest_converted = Counter("tau_atrest_converted_rows", "Rows sealed by the at-rest converter",
                                        ["table"], registry=r)
        self._mail(r)
        self.refreshers: list[Refresher] = []

    def _mail(self, r: CollectorRegistry) -> None:
        self.mail_queue = Gauge("tau_mail_queue_messages", "Outbound queue rows by state", ["state"], registry=r)
        self.mail_deliveries = Counter("tau_mail_deliveries", "Outbound delivery attempts per recipient by outcome"
                                       " (sent, deferred, bounced, expired)", ["status"], registry=r)
        self.mail_accepted = Counter("tau_mail_inbound_accepted", "Messages accepted by SMTP, per listener",
                                     ["listener"], registry=r)
        self.mail_rejected = Counter("tau_mail_inbound_rejected", "SMTP mail transactions refused, per reason",
                                     ["reason"], registry=r)
        self.mail_auth = Counter("tau_mail_auth_results", "SPF, DKIM and DMARC results of inbound mail",
                                 ["method", "result"], registry=r)
        self.mail_spam = Counter("tau_mail_spam_verdicts", "Spam verdicts of inbound mail (ham, junk, reject,"
                                 " unchecked)", ["verdict"], registry=r)
        for state in ("queued", "held", "sending", "sent", "failed"):
            self.mail_queue.labels(state).set(0)
        for protocol in ("smtp", "imap", "http", "websocket"):
            self.connections.labels(protocol)

    def observe_db(self, name: str, seconds: float, ok: bool) -> None:
        self.db_latency.labels(name, "ok" if ok else "error").observe(seconds)

    def add_refresher(self, refresh: Refresher) -> None:
        self.refreshers.append(refresh)

    async def refresh(self) -> None:
        """Run every refresher; one failing (the database is down) leaves its series as they were."""
        for refresh in self.refreshers:
            try:
                await refresh()
            except Exception:  # noqa: S112 - a scrape must not fail because one source is away
                continue

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
