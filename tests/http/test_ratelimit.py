"""Rate limits (issue 2, HTTP core): sliding windows per client IP (per minute) and per user (per
hour), answered with a JSON 429 and ``Retry-After``; never more than the limit in any window."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from tau.http.ratelimit import MemoryBuckets
from tests.support.harness import resolve
from tests.support.http import assert_json_error

ALICE, BOB = "alice@example.test", "bob@example.test"


@pytest.fixture
def limited(make_tau: Any) -> Any:
    return make_tau(limits={"requests_per_minute_ip": "100"})


def test_the_101st_request_in_a_minute_from_one_ip_gets_429(limited: Any) -> None:
    for n in range(100):
        assert limited.get("/api/health").status == 200, n
    response = limited.get("/api/health")
    body = assert_json_error(response, 429, "rate_limited")
    retry = int(response.header("retry-after"))
    assert 1 <= retry <= 62 and str(retry) in body["message"]


def test_a_slow_loop_still_gets_429_on_the_101st_request_in_a_minute(limited: Any) -> None:
    for n in range(100):
        assert limited.get("/api/health").status == 200, n
        limited.clock.advance(0.5)  # 100 requests spread over 50 s
    assert limited.get("/api/health").status == 429


def test_every_kind_of_request_counts(limited: Any) -> None:
    for _ in range(50):
        limited.get("/nope")
    for _ in range(50):
        limited.post_form("/oauth2/token", {"grant_type": "nonsense"})
    assert limited.get("/api/health").status == 429


def test_other_ips_have_their_own_bucket(limited: Any) -> None:
    for _ in range(101):
        limited.get("/api/health", ip="192.0.2.1")
    assert limited.get("/api/health", ip="192.0.2.1").status == 429
    assert limited.get("/api/health", ip="192.0.2.2").status == 200


def test_retry_after_says_when_requests_are_allowed_again(limited: Any) -> None:
    for _ in range(100):
        limited.get("/api/health")
    response = limited.get("/api/health")
    assert response.status == 429
    limited.clock.advance(int(response.header("retry-after")) - 2)
    assert limited.get("/api/health").status == 429  # still inside the window
    limited.clock.advance(2)
    for _ in range(100):
        assert limited.get("/api/health").status == 200
    assert limited.get("/api/health").status == 429


def test_a_limit_of_zero_turns_it_off(make_tau: Any) -> None:
    tau = make_tau(limits={"requests_per_minute_ip": "0", "requests_per_hour_user": "0"})
    token = tau.token()
    for _ in range(300):
        assert tau.me(token).status == 200


def test_each_user_has_an_hourly_limit_whatever_the_ip(make_tau: Any) -> None:
    tau = make_tau(limits={"requests_per_hour_user": "5"})
    token = tau.token()
    for n in range(5):
        assert tau.me(token, ip=f"198.51.100.{n}").status == 200
    response = tau.me(token, ip="198.51.100.99")
    assert_json_error(response, 429, "rate_limited")
    assert int(response.header("retry-after")) > 60  # an hourly bucket refills slowly
    # bob is not punished for alice's traffic
    assert tau.me(tau.token(BOB)).status == 200


def test_refusals_are_counted_in_metrics(limited: Any) -> None:
    for _ in range(103):
        limited.get("/api/health")
    value = limited.registry.metrics.registry.get_sample_value("tau_rate_limited_total", {"scope": "ip"})
    assert value == 3


# -- the bucket itself -------------------------------------------------------------------------

def take(buckets: MemoryBuckets, key: str = "k", capacity: int = 10, per: float = 60.0) -> float:
    return resolve(buckets.take(key, capacity, per))


def test_a_window_allows_a_burst_of_its_limit_then_waits_for_the_oldest_slot() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock)
    assert [take(buckets) for _ in range(10)] == [0.0] * 10
    assert take(buckets) == pytest.approx(61.0)  # the burst's slot leaves after 61 one-second slots
    clock.advance(30)
    assert take(buckets) == pytest.approx(31.0)


def test_no_window_ever_admits_more_than_the_limit() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock)
    admitted: list[float] = []
    for _ in range(3000):  # one request every 0.1 s for 300 s
        if take(buckets) == 0.0:
            admitted.append(clock.seconds())
        clock.advance(0.1)
    for i, t in enumerate(admitted):
        assert sum(1 for u in admitted[i:] if u - t < 60) <= 10


def test_a_bucket_never_holds_more_than_its_capacity() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock)
    take(buckets)
    clock.advance(100_000)
    assert [take(buckets) for _ in range(11)][-1] > 0


def test_buckets_are_independent_per_key() -> None:
    buckets = MemoryBuckets(Clock())
    for _ in range(10):
        take(buckets, "a")
    assert take(buckets, "a") > 0 and take(buckets, "b") == 0


def test_the_number_of_buckets_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from tau.http import ratelimit

    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 100)
    buckets = MemoryBuckets(Clock())
    for n in range(1000):
        take(buckets, f"ip:{n}")
    assert len(buckets._buckets) <= 100
