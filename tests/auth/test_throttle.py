"""Failed-login throttling (issue 2, TauID): exponential back-off per account, per IP and per
(account, IP) pair, each failure logged, a success clearing the pair."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from tau.auth.throttle import ACCOUNT_POLICY, IP_POLICY, PAIR_POLICY, LoginThrottle

ALICE, BOB = "alice@example.test", "bob@example.test"
HOME, EVIL = "192.0.2.1", "203.0.113.66"


@pytest.fixture
def clock() -> Clock:
    c = Clock()
    c.advance(1_000_000)
    return c


@pytest.fixture
def throttle(clock: Clock) -> LoginThrottle:
    return LoginThrottle(clock)


def fail(throttle: LoginThrottle, times: int, account: str = ALICE, ip: str | None = EVIL) -> None:
    for _ in range(times):
        throttle.failure(account, ip)


def test_the_first_failures_are_free(throttle: LoginThrottle) -> None:
    fail(throttle, PAIR_POLICY.free)
    assert throttle.retry_after(ALICE, EVIL) == 0


def test_back_off_doubles_with_each_further_failure(throttle: LoginThrottle, clock: Clock) -> None:
    fail(throttle, PAIR_POLICY.free)
    waits = []
    for _ in range(4):
        throttle.failure(ALICE, EVIL)
        waits.append(throttle.retry_after(ALICE, EVIL))
    assert waits == [1.0, 2.0, 4.0, 8.0]
    clock.advance(8)
    assert throttle.retry_after(ALICE, EVIL) == 0


def test_back_off_is_capped(throttle: LoginThrottle) -> None:
    fail(throttle, PAIR_POLICY.free + 40)
    assert throttle.retry_after(ALICE, EVIL) <= max(PAIR_POLICY.cap, IP_POLICY.cap, ACCOUNT_POLICY.cap)


def test_a_guesser_at_one_account_does_not_lock_its_owner_elsewhere(throttle: LoginThrottle) -> None:
    fail(throttle, PAIR_POLICY.free + 1)
    assert throttle.retry_after(ALICE, EVIL) > 0
    assert throttle.retry_after(ALICE, HOME) == 0


def test_one_ip_guessing_many_accounts_is_slowed_for_all_of_them(throttle: LoginThrottle) -> None:
    for n in range(IP_POLICY.free + 1):
        throttle.failure(f"user{n}@example.test", EVIL)
    assert throttle.retry_after("someone-new@example.test", EVIL) > 0
    assert throttle.retry_after("someone-new@example.test", HOME) == 0


def test_many_ips_guessing_one_account_slow_that_account_everywhere(throttle: LoginThrottle) -> None:
    for n in range(ACCOUNT_POLICY.free + 1):
        throttle.failure(ALICE, f"198.51.100.{n}")
    assert throttle.retry_after(ALICE, HOME) > 0
    assert throttle.retry_after(BOB, HOME) == 0


def test_a_success_clears_the_pair(throttle: LoginThrottle) -> None:
    fail(throttle, PAIR_POLICY.free - 1, ip=HOME)
    throttle.success(ALICE, HOME)
    fail(throttle, PAIR_POLICY.free, ip=HOME)
    assert throttle.retry_after(ALICE, HOME) == 0


def test_failures_are_forgotten_after_the_window(throttle: LoginThrottle, clock: Clock) -> None:
    fail(throttle, PAIR_POLICY.free)
    clock.advance(PAIR_POLICY.window + 1)
    throttle.failure(ALICE, EVIL)
    assert throttle.retry_after(ALICE, EVIL) == 0


def test_without_an_ip_the_account_is_still_throttled(throttle: LoginThrottle) -> None:
    fail(throttle, ACCOUNT_POLICY.free + 1, ip=None)
    assert throttle.retry_after(ALICE, None) > 0


def test_every_failure_is_logged_with_account_and_ip(throttle: LoginThrottle) -> None:
    with capturedLogs() as events:
        fail(throttle, 2)
    failures = [e for e in events if e.get("log_format", "").startswith("login_failed")]
    assert len(failures) == 2
    assert failures[0]["account"] == ALICE and failures[0]["ip"] == EVIL
