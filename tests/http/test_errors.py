"""The HTTP error contract (INTERFACE.md, HTTP): every response carries ``X-Request-ID``; every
error is JSON ``{error, message, timestamp, request_id}`` with that id; 404/405; bugs are JSON 500s."""

from __future__ import annotations

import re
from typing import Any

import pytest
from twisted.logger import capturedLogs

from tests.support.http import assert_json_error


def test_a_success_carries_a_request_id(tau: Any) -> None:
    response = tau.get("/api/health")
    assert response.status == 200
    assert re.fullmatch(r"[0-9a-f]{16}", response.header("x-request-id"))


def test_every_request_gets_its_own_id(tau: Any) -> None:
    ids = {tau.get("/api/health").header("x-request-id") for _ in range(5)}
    assert len(ids) == 5


def test_a_safe_client_request_id_is_kept(tau: Any) -> None:
    response = tau.get("/nope", headers={"X-Request-ID": "trace-abc.123_X"})
    assert assert_json_error(response, 404)["request_id"] == "trace-abc.123_X"


@pytest.mark.parametrize("hostile", ["a b", "x" * 65, "<script>", "id\u00e9"])
def test_an_unsafe_client_request_id_is_replaced(tau: Any, hostile: str) -> None:
    response = tau.get("/api/health", headers={"X-Request-ID": hostile.encode().decode("latin-1")})
    assert response.header("x-request-id") != hostile
    assert re.fullmatch(r"[0-9a-f]{16}", response.header("x-request-id"))


def test_an_unknown_path_is_a_json_404(tau: Any) -> None:
    assert_json_error(tau.get("/no/such/thing"), 404, "not_found")


def test_a_wrong_method_is_a_json_405_with_allow(tau: Any) -> None:
    response = tau.request("DELETE", "/api/health")
    assert_json_error(response, 405, "method_not_allowed")
    assert response.header("allow") == "GET"


def test_head_is_answered_like_get_without_a_body(tau: Any) -> None:
    response = tau.request("HEAD", "/api/health")
    assert response.status == 200 and response.body == b"" and response.header("x-request-id")


def test_a_path_that_is_not_utf8_is_a_json_400(tau: Any) -> None:
    assert_json_error(tau.get("/api/%ff%fe"), 400, "bad_path")


def test_a_protected_endpoint_without_credentials_is_a_json_401(tau: Any) -> None:
    response = tau.get("/api/me")
    assert_json_error(response, 401, "unauthorized")
    assert "Bearer" in response.header("www-authenticate")


def test_a_bug_is_a_json_500_without_details(tau: Any) -> None:
    with capturedLogs() as events:
        response = tau.get("/test/boom")
    body = assert_json_error(response, 500, "internal_error")
    assert b"hunter2" not in response.body and b"Traceback" not in response.body
    # ...while the log has everything, under the same request id
    failures = [e for e in events if e.get("log_failure") is not None]
    assert failures and failures[0]["request_id"] == body["request_id"]


def test_errors_are_not_cached(tau: Any) -> None:
    assert tau.get("/nope").header("cache-control") == "no-store"


def test_the_access_log_is_one_record_per_request_with_the_id(tau: Any) -> None:
    with capturedLogs() as events:
        response = tau.get("/api/health", headers={"User-Agent": "spec/1.0"})
    access = [e for e in events if e.get("log_namespace") == "tau.http.access"]
    assert len(access) == 1
    record = access[0]
    assert (record["method"], record["path"], record["status"]) == ("GET", "/api/health", 200)
    assert record["request_id"] == response.header("x-request-id") and record["agent"] == "spec/1.0"
    assert record["ip"] == "127.0.0.1" and isinstance(record["ms"], float)


def test_the_access_log_never_holds_a_query_token(tau: Any) -> None:
    with capturedLogs() as events:
        tau.get("/api/me?access_token=secret-token-value")
    access = [e for e in events if e.get("log_namespace") == "tau.http.access"]
    assert access and all("secret-token-value" not in str(v) for e in access for v in e.values())
