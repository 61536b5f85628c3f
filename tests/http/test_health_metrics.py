"""``GET /api/health`` probes the database and blob store for real (503 ``error`` naming the failing part);
``GET /metrics`` is the Prometheus exposition."""

from __future__ import annotations

import shutil
from typing import Any

from tests.support.http import assert_json_error


def test_health_is_ok_without_credentials(tau: Any) -> None:
    response = tau.get("/api/health")
    assert response.status == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["services"]["database"] == "ok" and body["services"]["blob_store"] == "ok"
    assert body["services"]["http"] == "ok"


def test_health_names_a_missing_blob_store(tau: Any) -> None:
    shutil.rmtree(tau.registry.blob_backend.root)
    body = assert_json_error(tau.get("/api/health"), 503, "unavailable")
    assert body["status"] == "error" and body["failing"] == ["blob_store"]
    assert body["services"]["blob_store"] == "unavailable" and body["services"]["database"] == "ok"
    assert "blob_store" in body["message"] and "does not exist" in body["message"]


def test_health_names_an_unreachable_database(tau: Any) -> None:
    tau.registry.db.close()
    body = assert_json_error(tau.get("/api/health"), 503, "unavailable")
    assert body["status"] == "error" and body["failing"] == ["database"] and body["services"]["blob_store"] == "ok"
    assert body["message"].startswith("database: ")


def test_health_includes_checks_services_register(tau: Any) -> None:
    def broken() -> None:
        raise RuntimeError("queue stuck\nsecond line")

    tau.registry.health_checks["mail_queue"] = broken
    response = tau.get("/api/health")
    assert response.status == 200 and response.json()["status"] == "degraded"
    assert response.json()["degraded"] == {"mail_queue": "second line"}


def samples(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line.rpartition(" ")
            out[labels] = float(value)
    return out


def test_metrics_count_requests_by_route_and_status(tau: Any) -> None:
    for _ in range(3):
        tau.get("/api/health")
    tau.get("/nope")
    response = tau.get("/metrics")
    assert response.status == 200 and response.header("content-type").startswith("text/plain")
    requests = samples(response.body.decode(), "tau_http_requests_total")
    assert requests['tau_http_requests_total{method="GET",route="/api/health",status="200"}'] == 3
    assert requests['tau_http_requests_total{method="GET",route="-",status="404"}'] == 1


def test_metrics_have_latency_errors_logins_and_connections(tau: Any) -> None:
    tau.get("/api/health")
    tau.password_grant(password="wrong-password")
    tau.token()
    text = tau.get("/metrics").body.decode()
    assert 'tau_http_request_duration_seconds_count{method="GET",route="/api/health"} 1.0' in text
    assert samples(text, "tau_logins_total") == {'tau_logins_total{outcome="failed",protocol="http"}': 1.0,
                                                 'tau_logins_total{outcome="ok",protocol="http"}': 1.0}
    assert 'tau_errors_total{code="invalid_grant",protocol="http"} 1.0' in text
    assert samples(text, "tau_connections")['tau_connections{protocol="http"}'] >= 1
    assert "tau_db_transaction_duration_seconds" in text


def test_open_connections_are_counted_until_closed(tau: Any) -> None:
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    def open_connections() -> float:
        return tau.registry.metrics.registry.get_sample_value("tau_connections", {"protocol": "http"}) or 0.0

    before = open_connections()
    channel = tau.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1234))
    channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1234)))
    assert open_connections() == before + 1
    channel.connectionLost(Failure(ConnectionDone()))
    assert open_connections() == before
