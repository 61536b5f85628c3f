"""Hostile request bodies: malformed JSON and form bodies are 400 JSON (never 500), oversized
bodies are 413 — refused from the declared length, or as soon as a chunked body passes the limit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.http import assert_json_error

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("body", [
    b"\x00\xff\xfe garbage \x80",
    b"grant_type=password&username=%FF%FE&password=\xff",
    b"a=b&&&==&",
    b"=" * 100,
    b"&".join(b"f%d=x" % n for n in range(500)),
    b'{"grant_type": "password"}',
], ids=["binary", "invalid-utf8", "broken-pairs", "only-equals", "too-many-fields", "json-in-a-form"])
def test_a_malformed_form_is_a_json_400(tau: Any, body: bytes) -> None:
    response = tau.request("POST", "/oauth2/token", body, headers=FORM)
    assert_json_error(response, 400)


def test_a_form_endpoint_refuses_other_content_types(tau: Any) -> None:
    response = tau.request("POST", "/oauth2/token", b'{"grant_type":"password"}', headers=JSON)
    body = assert_json_error(response, 400, "invalid_request")
    assert "x-www-form-urlencoded" in body["message"]


def test_an_empty_form_is_a_json_400(tau: Any) -> None:
    assert_json_error(tau.request("POST", "/oauth2/token", b"", headers=FORM), 400, "invalid_request")


def test_form_values_with_invalid_percent_escapes_are_data_not_errors(tau: Any) -> None:
    """A password with bytes that are not UTF-8 is simply wrong, not a crash."""
    response = tau.request("POST", "/oauth2/token",
                           b"grant_type=password&username=alice%40example.test&password=%ff%fe%fd", headers=FORM)
    assert_json_error(response, 401, "invalid_grant")


def deeply_nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("body", [
    b"\x00\xff\xfe garbage",
    b'{"a": "\xff\xfe"}',
    b'{"a": 1,}',
    b"{'a': 1}",
    b'{"a": NaN',
    b"",
    b"   ",
    deeply_nested(100_000),
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
], ids=["binary", "invalid-utf8", "trailing-comma", "single-quotes", "truncated", "empty", "blank",
        "deep-arrays", "deep-objects"])
def test_malformed_json_is_a_json_400(make_tau: Any, body: bytes) -> None:
    tau = make_tau(limits={"request_body": str(2 * 1024 * 1024)})
    response = tau.request("POST", "/test/echo", body, headers=JSON)
    assert_json_error(response, 400, "invalid_json")


@pytest.mark.parametrize("value", [[1, 2], "text", 42, None, True])
def test_json_that_is_not_an_object_is_a_json_400(tau: Any, value: Any) -> None:
    response = tau.request("POST", "/test/echo", json.dumps(value).encode(), headers=JSON)
    body = assert_json_error(response, 400, "invalid_json")
    assert "object" in body["message"]


def test_a_json_object_gets_through(tau: Any) -> None:
    response = tau.request("POST", "/test/echo", json.dumps({"to": ["ü@example.test"]}).encode(), headers=JSON)
    assert response.status == 200 and response.json() == {"got": {"to": ["ü@example.test"]}}


@pytest.fixture
def small(make_tau: Any) -> Any:
    return make_tau(limits={"request_body": "4096"})


def test_a_declared_oversized_body_is_refused_with_413(small: Any) -> None:
    response = small.request("POST", "/test/echo", b"x" * 5000, headers=JSON)
    body = assert_json_error(response, 413, "payload_too_large")
    assert "4096" in body["message"]
    assert response.header("connection") == "close"


def test_a_chunked_oversized_body_is_refused_with_413(small: Any) -> None:
    response = small.request("POST", "/test/echo", b"x" * 20_000, headers=JSON, chunked=True)
    assert_json_error(response, 413, "payload_too_large")


def test_a_chunked_body_under_the_limit_is_read(small: Any) -> None:
    response = small.request("POST", "/test/echo", json.dumps({"a": "b" * 3000}).encode(), headers=JSON,
                             chunked=True)
    assert response.status == 200 and len(response.json()["got"]["a"]) == 3000


def test_a_body_exactly_at_the_limit_is_read(small: Any) -> None:
    payload = json.dumps({"a": ""}).encode()
    payload = payload[:-2] + b"x" * (4096 - len(payload)) + payload[-2:]
    assert len(payload) == 4096
    assert small.request("POST", "/test/echo", payload, headers=JSON).status == 200


def test_oversized_bodies_are_refused_before_any_handler_or_login(small: Any) -> None:
    """413 wins over 401: the server never buffers a huge body just to refuse the caller."""
    response = small.request("POST", "/api/me", b"x" * 100_000, headers=JSON)
    assert_json_error(response, 413)


def test_an_oversized_body_with_expect_continue_gets_413_not_100(small: Any) -> None:
    response = small.request("POST", "/test/echo", b"x" * 5000, headers={**JSON, "Expect": "100-continue"})
    assert response.status == 413


def test_the_token_endpoint_has_the_same_limit(small: Any) -> None:
    response = small.post_form("/oauth2/token", {"grant_type": "password", "username": "a@example.test",
                                                 "password": "p" * 10_000})
    assert_json_error(response, 413)


@pytest.mark.parametrize("body", [b'{"title": "a\\u0000b"}', b'{"k\\u0000": 1}', b'{"a": ["x\\\\\\u0000"]}'],
                         ids=["in-a-value", "in-a-key", "after-an-escaped-backslash"])
def test_json_strings_with_nul_are_a_json_400(tau: Any, body: bytes) -> None:
    response = tau.request("POST", "/test/echo", body, headers=JSON)
    body = assert_json_error(response, 400, "invalid_json")
    assert "NUL" in body["message"]


def test_an_escaped_backslash_before_u0000_is_just_text(tau: Any) -> None:
    response = tau.request("POST", "/test/echo", b'{"a": "C:\\\\u0000"}', headers=JSON)
    assert response.status == 200 and response.json() == {"got": {"a": "C:\\u0000"}}
