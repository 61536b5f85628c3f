"""Issue 13 item 3: when a session is revoked, its access tokens stop working within seconds on
every node, not at expiry. Through HTTP on SQLite and PostgreSQL; "nodes" are two in-process
installations on one database with one secret (a token of one is valid on the other), each with
its own fake clock, so the test can say exactly how many seconds a node may lag."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tau.auth import accounts, passwords
from tau.bus import LocalBus
from tests.support.http import assert_json_error
from tests.support.suite import Suite, make_suite

ADMIN, BOB = "alice@example.test", "bob@example.test"
USERS = {ADMIN: True, BOB: False}


@pytest.fixture
def nodes(tmp_path: Path, db_url: str) -> Iterator[Callable[..., Suite]]:
    """``nodes()`` → node A; called again → another node on the same database and secret."""
    made: list[Suite] = []

    def make(**provide: Any) -> Suite:
        folder = tmp_path / f"node{len(made)}"
        suite = make_suite(folder, db_url, USERS, secret_from=(tmp_path / "node0") if made else None)
        for name, value in provide.items():
            suite.registry.provide(name, value)
        made.append(suite)
        return suite

    yield make
    for suite in made:
        suite.registry.db.close()


@pytest.fixture
def node(nodes: Callable[..., Suite]) -> Suite:
    return nodes()


def assert_refused(node: Suite, token: str) -> None:
    assert_json_error(node.get("/api/emails", token), 401, "invalid_token")


def seconds_until_refused(node: Suite, token: str, limit: float = 15.0) -> float:
    """Advance ``node``'s clock a second at a time until ``token`` is refused there."""
    waited = 0.0
    while node.get("/api/emails", token).status == 200:
        assert waited < limit, f"token still accepted after {waited} s"
        node.clock.advance(1.0)
        waited += 1.0
    assert_refused(node, token)
    return waited


def refresh(node: Suite, refresh_token: str) -> Any:
    return node.client.post_form("/oauth2/token", {"grant_type": "refresh_token", "refresh_token": refresh_token})


def revoke(node: Suite, token: str) -> None:
    assert node.client.post_form("/oauth2/revoke", {"token": token}).status == 200


# -- one node: refused at once -----------------------------------------------------------------------

def test_refresh_token_reuse_kills_the_sessions_access_tokens_at_once(node: Suite) -> None:
    first = node.tokens(BOB)
    second = refresh(node, first["refresh_token"]).json()
    assert node.get("/api/emails", first["access_token"]).status == 200
    assert node.get("/api/emails", second["access_token"]).status == 200
    other = node.tokens(BOB)  # another session of bob's
    stolen = refresh(node, first["refresh_token"])  # the thief (or the victim) replays it
    assert stolen.status == 400 and stolen.json()["error"] == "invalid_grant"
    assert_refused(node, first["access_token"])
    assert_refused(node, second["access_token"])
    assert node.get("/api/emails", other["access_token"]).status == 200


def test_rfc7009_revocation_of_either_token_ends_the_session(node: Suite) -> None:
    by_refresh, by_access, other = node.tokens(BOB), node.tokens(BOB), node.tokens(BOB)
    revoke(node, by_refresh["refresh_token"])
    assert_refused(node, by_refresh["access_token"])
    revoke(node, by_access["access_token"])
    assert_refused(node, by_access["access_token"])
    assert refresh(node, by_access["refresh_token"]).status == 400
    assert node.get("/api/emails", other["access_token"]).status == 200


def test_a_password_change_or_disabling_ends_every_session_at_once(node: Suite) -> None:
    admin = node.token(ADMIN)
    sessions = [node.token(BOB), node.token(BOB)]
    r = node.client.post_json(f"/api/admin/users/{BOB}", {"password": "another-Pa55-word"}, method="PATCH",
                              token=admin)
    assert r.status == 200, r.body
    for token in sessions:
        assert_refused(node, token)
    fresh = node.token(BOB, password="another-Pa55-word")
    assert node.client.post_json(f"/api/admin/users/{BOB}", {"disabled": True}, method="PATCH",
                                 token=admin).status == 200
    assert_refused(node, fresh)


def test_a_two_factor_change_ends_the_other_sessions(node: Suite) -> None:
    from tau.auth import totp

    here, elsewhere = node.token(BOB), node.token(BOB)
    r = node.client.post_json("/api/account/2fa", {"action": "setup"}, token=here)
    assert r.status == 200, r.body
    secret = r.json()["otpauth_uri"].split("secret=")[1].split("&")[0]
    import base64

    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    code = totp.totp(key, node.registry.clock.seconds())
    r = node.client.post_json("/api/account/2fa", {"action": "confirm", "code": code}, token=here)
    assert r.status == 200 and r.json()["enabled"] is True, r.body
    assert_refused(node, elsewhere)
    assert node.get("/api/emails", here).status == 200  # the session that did it stays


def test_the_steady_state_costs_no_database_round_trip(node: Suite) -> None:
    token = node.token(BOB)
    assert node.get("/api/me", token).status == 200  # warms the caches and the revocation list
    calls: list[str] = []
    run = node.registry.db.run

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return run(name, *args, **kwargs)

    node.registry.db.run = counting  # type: ignore[method-assign]
    try:
        for _ in range(20):
            assert node.get("/api/me", token).status == 200
            node.clock.advance(0.05)
    finally:
        node.registry.db.run = run  # type: ignore[method-assign]
    assert calls == []


# -- two nodes ---------------------------------------------------------------------------------------

def test_a_revocation_on_one_node_is_honoured_by_another_within_seconds(nodes: Callable[..., Suite]) -> None:
    a, b = nodes(), nodes()
    session = a.tokens(BOB)
    assert b.get("/api/emails", session["access_token"]).status == 200  # b has polled just now
    revoke(a, session["refresh_token"])
    assert_refused(a, session["access_token"])
    lag = seconds_until_refused(b, session["access_token"])
    assert lag <= 2 * b.registry.revocations.poll <= 10


def test_a_password_changed_by_the_cli_reaches_every_node_within_seconds(nodes: Callable[..., Suite]) -> None:
    a, b = nodes(), nodes()
    token = a.token(BOB)
    assert a.get("/api/emails", token).status == 200 and b.get("/api/emails", token).status == 200
    # what `tau user passwd` does: one transaction, no running node told
    new_hash = passwords.hash_password("another-Pa55-word")
    a.registry.db.sync.run("cli_user_passwd", accounts.set_password, BOB, new_hash)
    # both nodes' user caches still hold the old record: only the revoked session can stop it
    lags = [seconds_until_refused(n, token) for n in (a, b)]
    assert max(lags) <= 2 * a.registry.revocations.poll < 10  # before the 10 s user cache expires


def test_with_a_shared_bus_other_nodes_learn_at_once(nodes: Callable[..., Suite]) -> None:
    bus = LocalBus()  # what Redis pub/sub gives a cluster
    a, b = nodes(bus=bus), nodes(bus=bus)
    session = a.tokens(BOB)
    assert b.get("/api/emails", session["access_token"]).status == 200
    revoke(a, session["refresh_token"])
    assert_refused(b, session["access_token"])  # no clock advanced: pushed, not polled
