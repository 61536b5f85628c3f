"""Subtrees mounted on the HTTP core (how DAV plugs in): rate limits and auth still apply; where
DAV clients need it, Basic credentials (password or app password) work alongside Bearer."""

from __future__ import annotations

import base64
from typing import Any

from tau.auth import accounts
from tau.auth.throttle import PAIR_POLICY
from tests.support.http import assert_json_error

ALICE, PASSWORD = "alice@example.test", "secret-Pa55"


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def test_a_mount_answers_for_its_whole_subtree(tau: Any) -> None:
    response = tau.get("/test/dav/calendars/alice/home/", headers=basic(ALICE, PASSWORD))
    assert response.status == 200 and response.header("x-request-id")
    assert response.json() == {"user": ALICE, "postpath": ["calendars", "alice", "home", ""], "bytes": 0}


def test_a_mount_takes_bearer_tokens_too(tau: Any) -> None:
    assert tau.get("/test/dav/x", token=tau.token()).json()["user"] == ALICE


def test_a_mount_takes_app_passwords(tau: Any) -> None:
    tau.registry.db.sync.run("t", accounts.add_app_password, ALICE, "thunderbird",
                             tau.registry.keys.mac("app-password", "app-Pass-0123456789"))
    assert tau.get("/test/dav/x", headers=basic(ALICE, "app-Pass-0123456789")).json()["user"] == ALICE


def test_wrong_basic_credentials_get_a_basic_challenge(tau: Any) -> None:
    response = tau.get("/test/dav/x", headers=basic(ALICE, "wrong-password"))
    assert_json_error(response, 401, "unauthorized")
    assert response.header("www-authenticate").startswith('Basic realm="tau"')


def test_malformed_basic_credentials_are_401_not_500(tau: Any) -> None:
    for value in ("Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(),
                  "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()):
        assert_json_error(tau.get("/test/dav/x", headers={"Authorization": value}), 401)


def test_basic_logins_are_throttled_with_429(tau: Any) -> None:
    for _ in range(PAIR_POLICY.free + 1):
        tau.get("/test/dav/x", headers=basic(ALICE, "guess-guess"))
    response = tau.get("/test/dav/x", headers=basic(ALICE, PASSWORD))
    assert_json_error(response, 429, "too_many_failed_logins")
    assert int(response.header("retry-after")) >= 1


def test_a_mount_may_stream_bodies_beyond_the_buffered_limit(make_tau: Any) -> None:
    tau = make_tau(limits={"request_body": "4096"})
    response = tau.request("PUT", "/test/upload/big.bin", b"x" * 100_000)
    assert response.status == 200 and response.json()["bytes"] == 100_000
    assert_json_error(tau.request("PUT", "/test/dav/big.bin", b"x" * 100_000, headers=basic(ALICE, PASSWORD)), 413)
