"""Issue 2's acceptance list, verbatim, against the real daemon: ``tau init`` + ``tau user add`` +
``twistd -n tau`` on free loopback ports, on the embedded SQLite and on the local PostgreSQL."""

from __future__ import annotations

import http.client
import json
import random
import re
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import PostgresDatabase, engines

pytestmark = pytest.mark.e2e

ALICE, PASSWORD = "alice@example.test", "secret-Pa55"


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    """One daemon per engine for this module, the per-IP limit at 100 as in the acceptance list."""
    pg = PostgresDatabase("tau_e2e") if request.param == "postgres" else None
    d = TauDaemon(tmp_path_factory.mktemp(f"core-{request.param}"), database_url=pg.url if pg else None,
                  listeners=("http", "https"), env={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "100"})
    try:
        d.init()
        d.add_user(ALICE, PASSWORD)
        d.start()
        yield d
    finally:
        d.stop()
        if pg is not None:
            pg.drop()


def request(d: TauDaemon, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """One HTTP request from a chosen loopback source address (each has its own rate-limit bucket)."""
    conn = http.client.HTTPConnection("127.0.0.1", d.ports["http"], timeout=10, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def fresh_source() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"


def password_grant(d: TauDaemon, password: str) -> tuple[int, dict[str, str], bytes]:
    return request(d, "POST", "/oauth2/token", urlencode({"grant_type": "password", "username": ALICE,
                                                           "password": password}).encode(),
                   {"Content-Type": "application/x-www-form-urlencoded"})


def test_health_is_200(daemon: TauDaemon) -> None:
    status, headers, body = request(daemon, "GET", "/api/health")
    assert status == 200, body
    assert json.loads(body)["status"] == "ok" and headers["x-request-id"]


def test_a_token_from_the_token_endpoint_opens_a_protected_endpoint(daemon: TauDaemon) -> None:
    status, _, body = password_grant(daemon, PASSWORD)
    assert status == 200, body
    token = json.loads(body)["access_token"]
    status, _, body = request(daemon, "GET", "/api/me", headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["address"] == ALICE
    assert request(daemon, "GET", "/api/me")[0] == 401


def test_a_wrong_password_gets_401_json_with_request_id(daemon: TauDaemon) -> None:
    status, headers, body = password_grant(daemon, "wrong-password")
    assert status == 401 and headers["content-type"].startswith("application/json")
    error = json.loads(body)
    assert error["error"] == "invalid_grant" and error["message"] and error["timestamp"]
    assert error["request_id"] == headers["x-request-id"]


def test_the_101st_request_in_a_minute_from_one_ip_gets_429_with_retry_after(daemon: TauDaemon) -> None:
    """The limiter is a token bucket refilling at 100/min, so the 100 go quickly (well under the
    0.6 s in which one token would come back): one keep-alive connection, a cheap endpoint."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.ports["http"], timeout=10,
                                      source_address=(fresh_source(), 0))
    statuses = []
    for _ in range(100):
        conn.request("GET", "/.well-known/openid-configuration")
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    assert statuses == [200] * 100
    conn.request("GET", "/api/health")
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 429, body
    assert int(response.getheader("retry-after")) >= 1
    assert json.loads(body)["request_id"] == response.getheader("x-request-id")
    assert request(daemon, "GET", "/api/health", source=fresh_source())[0] == 200  # others unaffected


def test_the_https_listener_answers_with_the_self_signed_certificate(daemon: TauDaemon) -> None:
    context = ssl.create_default_context(cafile=str(daemon.data / "tls" / "cert.pem"))  # verifies "localhost"
    conn = http.client.HTTPSConnection("localhost", daemon.ports["https"], timeout=10, context=context)
    try:
        conn.request("GET", "/api/health")
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["status"] == "ok"
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        conn.close()


def test_metrics_are_exposed(daemon: TauDaemon) -> None:
    status, headers, body = request(daemon, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert b'tau_http_requests_total{method="GET",route="/api/health",status="200"}' in body


def test_logs_are_json_lines_with_the_access_record(daemon: TauDaemon) -> None:
    _, headers, _ = request(daemon, "GET", "/api/health", headers={"X-Request-ID": "e2e-log-check"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "e2e-log-check" not in daemon.log.read_text():
        time.sleep(0.05)
    records = []
    for line in daemon.log.read_text().splitlines():
        if line.startswith("tau: "):  # pre-start notes go to stderr as plain lines
            continue
        records.append(json.loads(line))  # every other line is one JSON object
    access = [r for r in records if r.get("request_id") == "e2e-log-check"]
    assert len(access) == 1
    assert access[0]["ns"] == "tau.http.access" and access[0]["status"] == 200 and access[0]["path"] == "/api/health"


def test_sigterm_lets_work_in_flight_finish_and_exits_within_5_seconds(daemon: TauDaemon) -> None:
    """Runs last for each engine: it stops the module's daemon, with a login (argon2id) in flight."""
    outcome: dict[str, Any] = {}

    def login() -> None:
        try:
            outcome["status"] = password_grant(daemon, PASSWORD)[0]
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = repr(exc)

    worker = threading.Thread(target=login)
    worker.start()
    time.sleep(0.05)
    taken = daemon.stop()
    worker.join(10)
    assert outcome == {"status": 200}
    assert taken < 5.0
    assert daemon.proc.returncode in (0, -15)  # twistd re-raises the signal after a clean shutdown
    text = daemon.log.read_text()
    assert "Server Shut Down." in text and "Traceback" not in text
    assert re.search(r'"msg": "tau stopping"', text)
