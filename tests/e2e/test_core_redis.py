"""Rate limits shared through Redis (``[redis] url``): two real daemons on one PostgreSQL and one
Redis count one client's requests together; an unreachable Redis fails open, promptly. (Redis with
SQLite is refused by the config on purpose, so these run on PostgreSQL.)"""

from __future__ import annotations

import http.client
import random
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import PostgresDatabase, postgres_available

pytestmark = pytest.mark.e2e
REDIS_DB = 11


def redis_cli(*args: str) -> str:
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-n", str(REDIS_DB), *args], capture_output=True,
                         text=True, timeout=10)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def shared_postgres() -> Iterator[PostgresDatabase]:
    if not postgres_available():
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    pg = PostgresDatabase("tau_e2e_redis")
    yield pg
    pg.drop()


def get(d: TauDaemon, path: str, source: str) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", d.ports["http"], timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def status_of(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status


def test_two_nodes_share_one_clients_bucket(tmp_path_factory: pytest.TempPathFactory,
                                            shared_postgres: PostgresDatabase) -> None:
    try:
        if redis_cli("PING") != "PONG":
            pytest.skip("no Redis at 127.0.0.1:6379")
    except FileNotFoundError:
        pytest.skip("redis-cli not installed")
    source = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
    key = f"tau:rl:ip:{source}"
    redis_cli("DEL", key)
    env = {"TAU_REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}", "TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "100"}
    nodes = [TauDaemon(tmp_path_factory.mktemp(f"node{n}"), database_url=shared_postgres.url,
                       listeners=("http",), env=env) for n in range(2)]
    try:
        for node in nodes:
            node.init()
            node.start()
        # quickly (the bucket refills one token per 0.6 s): one keep-alive connection per node
        conns = [http.client.HTTPConnection("127.0.0.1", node.ports["http"], timeout=10, source_address=(source, 0))
                 for node in nodes]
        statuses = [status_of(conns[n % 2], "/.well-known/openid-configuration") for n in range(100)]
        assert statuses == [200] * 100
        assert [status_of(conn, "/api/health") for conn in conns] == [429, 429]  # the 101st, wherever it lands
        for conn in conns:
            conn.close()
        status, headers = get(nodes[0], "/api/health", source)
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert redis_cli("EXISTS", key) == "1"
    finally:
        for node in nodes:
            node.stop()
        redis_cli("DEL", key)


def test_an_unreachable_redis_fails_open_quickly(tmp_path_factory: pytest.TempPathFactory,
                                                 shared_postgres: PostgresDatabase) -> None:
    node = TauDaemon(tmp_path_factory.mktemp("noredis"), database_url=shared_postgres.url, listeners=("http",),
                     env={"TAU_REDIS_URL": "redis://127.0.0.1:1/0"})
    try:
        node.init()
        node.start()
        started = time.monotonic()
        first = get(node, "/api/health", "127.0.0.1")[0]
        first_took = time.monotonic() - started
        started = time.monotonic()
        rest = [get(node, "/api/health", "127.0.0.1")[0] for _ in range(20)]
        rest_took = time.monotonic() - started
    finally:
        node.stop()
    assert first == 200 and first_took < 2.0
    assert rest == [200] * 20 and rest_took < 2.0  # no per-request wait while Redis is down
    assert "Redis unavailable" in node.log.read_text()
