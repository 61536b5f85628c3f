"""Prometheus metrics (prometheus-client), one registry per daemon (no module globals).

Series: HTTP requests by method/route/status, request latency, errors, open connections per
protocol, database transaction time by name, logins by outcome.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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

    def observe_db(self, name: str, seconds: float, ok: bool) -> None:
        self.db_latency.labels(name, "ok" if ok else "error").observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
