"""The Redis-backed buckets (``[redis] url``): the Lua script against the real local Redis, and
the limiter failing open — promptly — when Redis does not answer. The daemon-level test with
two nodes sharing one Redis is in tests/e2e/test_core_redis.py."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from typing import Any

import pytest
import txredisapi
from twisted.internet import defer
from twisted.internet.task import Clock

from tau.http import ratelimit
from tau.http.ratelimit import RedisBuckets
from tests.support.harness import resolve

REDIS_DB = "11"


def redis_cli(*args: str) -> str:
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "-n", REDIS_DB, *args],
                         capture_output=True, text=True, timeout=10)
    if out.returncode != 0 or out.stdout.startswith("(error)") or "ERR" in out.stdout[:5]:
        raise RuntimeError(out.stdout + out.stderr)
    return out.stdout.strip()


@pytest.fixture
def redis_key() -> Any:
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli not installed")
    try:
        redis_cli("PING")
    except Exception as exc:
        pytest.skip(f"no Redis at 127.0.0.1:6379: {exc}")
    key = f"tau:rl:test:{secrets.token_hex(6)}"
    yield key
    redis_cli("DEL", key)


def test_the_bucket_script_allows_the_capacity_then_refuses(redis_key: str) -> None:
    started = time.monotonic()
    waits = [float(redis_cli("EVAL", ratelimit._SCRIPT, "1", redis_key, "5", "1", "60")) for _ in range(6)]
    elapsed = time.monotonic() - started  # six redis-cli processes: seconds on a loaded machine
    assert waits[:5] == [0.0] * 5
    # the burst's slot leaves the 61-slot window 60-61 s after it began, less the time spent since
    assert 60.0 - elapsed < waits[5] <= 61.0
    ttl_ms = int(redis_cli("PTTL", redis_key))
    assert 0 < ttl_ms <= 62_000  # counters expire once the window has passed


class FakeRedis:
    def __init__(self, answer: Any = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.answer = answer

    def eval(self, script: str, keys: list[str], args: list[Any]) -> defer.Deferred:
        self.calls.append((keys, args))
        return defer.succeed(self.answer) if self.answer is not None else defer.Deferred()


def buckets_with(fake: FakeRedis, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> RedisBuckets:
    monkeypatch.setattr(txredisapi, "lazyConnectionPool", lambda *a, **k: fake)
    return RedisBuckets("redis://127.0.0.1:6379/3", clock)


def test_the_limiter_uses_the_scripts_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRedis(answer=b"2.5")
    buckets = buckets_with(fake, Clock(), monkeypatch)
    assert resolve(buckets.take("ip:192.0.2.1", 100, 60.0)) == 2.5
    assert fake.calls == [(["tau:rl:ip:192.0.2.1"], [100, 1.0, 60])]  # limit, slot length, slots


def test_an_unanswering_redis_lets_requests_through_after_a_short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    fake = FakeRedis()
    buckets = buckets_with(fake, clock, monkeypatch)
    pending = defer.Deferred.fromCoroutine(buckets.take("ip:192.0.2.1", 100, 60.0))
    assert not pending.called
    clock.advance(RedisBuckets.TIMEOUT)
    assert resolve(pending) == 0.0
    # while Redis is considered down, requests pass at once without asking it
    assert resolve(buckets.take("ip:192.0.2.1", 100, 60.0)) == 0.0
    assert len(fake.calls) == 1
    clock.advance(RedisBuckets.BACKOFF)
    defer.Deferred.fromCoroutine(buckets.take("ip:192.0.2.1", 100, 60.0))
    assert len(fake.calls) == 2


def test_a_redis_error_lets_the_request_through(monkeypatch: pytest.MonkeyPatch) -> None:
    class Failing(FakeRedis):
        def eval(self, *args: Any) -> defer.Deferred:
            return defer.fail(txredisapi.ConnectionError("Not connected"))

    assert resolve(buckets_with(Failing(), Clock(), monkeypatch).take("k", 1, 1.0)) == 0.0
