"""A second user must see nothing of the first: a token speaks only for its own user, cannot be
altered to speak for another, and stops working when its user is disabled or changes password."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from tau.auth import accounts
from tau.auth.tokens import TokenService
from tau.keys import Keys
from tests.support.http import assert_json_error

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
OTHER_HASH = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$1hG5jPfbyJ9cI7OtvL5hdQ"  # of some other password


def test_each_token_reads_only_its_own_user(tau: Any) -> None:
    alice, bob = tau.token(ALICE), tau.token(BOB)
    assert tau.me(alice).json()["address"] == ALICE
    assert tau.me(bob).json()["address"] == BOB


def test_bobs_password_does_not_get_alices_token(tau: Any) -> None:
    assert_json_error(tau.password_grant(ALICE, PASSWORD + "-bob"), 401)


def rewrite_subject(token: str, subject: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = subject
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_bob_cannot_turn_his_token_into_alices(tau: Any) -> None:
    forged = rewrite_subject(tau.token(BOB), ALICE)
    assert_json_error(tau.me(forged), 401, "invalid_token")


def test_a_token_from_another_installation_opens_nothing(tau: Any) -> None:
    elsewhere = TokenService(Keys(os.urandom(32)), tau.registry.issuer, 3600, tau.clock)
    assert_json_error(tau.me(elsewhere.issue(ALICE)), 401, "invalid_token")


def test_an_expired_token_opens_nothing(tau: Any) -> None:
    token = tau.token()
    tau.clock.advance(3601)
    assert_json_error(tau.me(token), 401, "invalid_token")


def test_a_token_for_a_deleted_user_opens_nothing(tau: Any) -> None:
    token = tau.token()
    tau.registry.db.sync.run("t", accounts.delete_user, ALICE)
    tau.clock.advance(11)  # past the per-request user cache
    assert_json_error(tau.me(token), 401, "invalid_token")


def test_a_disabled_users_token_stops_working(tau: Any) -> None:
    token = tau.token()
    assert tau.me(token).status == 200
    tau.registry.db.sync.run("t", accounts.set_disabled, ALICE, True)
    tau.clock.advance(11)  # the user cache holds records up to 10 s
    assert_json_error(tau.me(token), 401, "invalid_token")
    assert tau.me(tau.token(BOB)).status == 200


def test_a_password_change_invalidates_older_tokens(tau: Any) -> None:
    old = tau.token()
    tau.clock.advance(10)  # the change comes 10 s later
    tau.registry.db.sync.run("t", accounts.set_password, ALICE, OTHER_HASH)
    tau.clock.advance(1)
    assert_json_error(tau.me(old), 401, "invalid_token")
    assert tau.me(tau.token(BOB)).status == 200


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a.b.c", "Token abc", "Bearer \xe9\xe9",
                                    "Basic YWxpY2VAZXhhbXBsZS50ZXN0OnNlY3JldC1QYTU1"])
def test_anything_but_a_valid_bearer_token_is_401(tau: Any, header: str) -> None:
    """Basic is for DAV mounts only; the API takes Bearer tokens."""
    response = tau.get("/api/me", headers={"Authorization": header})
    assert_json_error(response, 401)
    assert "Bearer" in response.header("www-authenticate")


def test_a_token_in_the_query_string_works_for_clients_that_cannot_set_headers(tau: Any) -> None:
    response = tau.get("/api/me?access_token=" + tau.token(BOB))
    assert response.status == 200 and response.json()["address"] == BOB


def test_me_shows_no_secrets(tau: Any) -> None:
    body = tau.me(tau.token()).json()
    assert "password_hash" not in body and "argon2" not in json.dumps(body)
