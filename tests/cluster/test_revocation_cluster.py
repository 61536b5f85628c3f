"""Issue 13 item 3 on a real cluster: two ``twistd -n tau`` nodes on one PostgreSQL and a private
Redis. A session revoked on node A (RFC 7009, or a password changed with the CLI, which tells
no node) is refused by node B within 10 s, not when its access token expires."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tau.client import Closed, Socket
from tests.support.cluster import Cluster, RedisServer
from tests.support.databases import PostgresDatabase, postgres_available

pytestmark = pytest.mark.e2e
PASSWORD = "secret-Pa55"
BOB = "bob@example.test"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not postgres_available() or not RedisServer.available():
        pytest.skip("needs PostgreSQL and redis-server")
    pg = PostgresDatabase("tau_revoke")
    redis = RedisServer().start()
    nodes = Cluster(tmp_path_factory.mktemp("revoke"), 2, pg.url, {"TAU_REDIS_URL": redis.url(3)},
                    listeners=("http",)).init((BOB,), PASSWORD).start()
    try:
        yield nodes
    finally:
        nodes.stop()
        redis.stop()
        pg.drop()


def grant(node: Any, password: str = PASSWORD) -> dict[str, Any]:
    status, _, body = node.http("POST", "/oauth2/token", urlencode(
        {"grant_type": "password", "username": BOB, "password": password}).encode(), FORM)
    assert status == 200, body
    return json.loads(body)


def seconds_until_refused(node: Any, token: str, limit: float = 10.0) -> float:
    started = time.monotonic()
    while True:
        status, _, body = node.http("GET", "/api/emails", token=token)
        waited = time.monotonic() - started
        if status == 401:
            assert json.loads(body)["error"] == "invalid_token"
            return waited
        assert status == 200 and waited < limit, (status, waited)
        time.sleep(0.1)


def test_rfc7009_revocation_on_one_node_reaches_the_other(cluster: Cluster) -> None:
    a, b = cluster[0], cluster[1]
    session = grant(a)
    assert b.http("GET", "/api/emails", token=session["access_token"])[0] == 200
    assert a.http("POST", "/oauth2/revoke", urlencode({"token": session["refresh_token"]}).encode(), FORM)[0] == 200
    assert a.http("GET", "/api/emails", token=session["access_token"])[0] == 401
    assert seconds_until_refused(b, session["access_token"]) < 10


def test_a_password_changed_with_the_cli_reaches_every_node(cluster: Cluster) -> None:
    a, b = cluster[0], cluster[1]
    token = grant(b)["access_token"]
    assert a.http("GET", "/api/emails", token=token)[0] == 200

    async def scenario() -> float:
        sock = await Socket.connect(b.url, "/ws/messages", token)
        await sock.recv_type("synced")
        started = time.monotonic()
        a.cli("user", "passwd", BOB, "--password-stdin", input=b"another-Pa55-word\n")
        with pytest.raises(Closed):  # nobody told node B: it polls while a socket watches
            while True:
                await sock.recv(10)
        assert (sock.close_code, sock.close_reason) == (4401, "session_revoked")
        return time.monotonic() - started

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) < 10
    assert max(seconds_until_refused(n, token) for n in (a, b)) < 10
