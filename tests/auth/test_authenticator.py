"""Password and app-password login (the one path every protocol uses), on both engines:
argon2id off the calling thread, a keyed credential cache, throttling, disabled accounts."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.logger import capturedLogs

from tau.auth import accounts, passwords
from tau.auth.authenticator import LoginFailed, LoginThrottled
from tau.auth.throttle import PAIR_POLICY
from tests.support.harness import add_user, resolve

ALICE, PASSWORD, IP = "alice@example.test", "secret-Pa55", "192.0.2.7"


class Argon2Counter:
    """Counts argon2id verifications and checks each one went through ``run_in_thread``."""

    def __init__(self, registry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.off_thread = True
        self._inside = False
        real_verify, real_run = passwords.verify_password, registry._run_in_thread

        def verify(stored: Any, password: str) -> bool:
            self.calls += 1
            self.off_thread = self.off_thread and self._inside
            return real_verify(stored, password)

        def run_in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
            self._inside = True
            try:
                return real_run(fn, *args, **kwargs)
            finally:
                self._inside = False

        monkeypatch.setattr(passwords, "verify_password", verify)
        registry._run_in_thread = run_in_thread


@pytest.fixture
def argon2(registry: Any, monkeypatch: pytest.MonkeyPatch) -> Argon2Counter:
    return Argon2Counter(registry, monkeypatch)


@pytest.fixture
def alice(registry: Any) -> Any:
    return add_user(registry, ALICE, PASSWORD)


@pytest.fixture
def quick_alice(registry: Any) -> Any:
    """Alice with a low-cost argon2id hash: for tests that fail many logins on purpose."""
    return add_user(registry, ALICE, PASSWORD, fast_hash=True)


def login(registry: Any, address: str = ALICE, password: str = PASSWORD, ip: str | None = IP) -> Any:
    return resolve(registry.authenticator.authenticate(address, password, ip))


def test_the_right_password_gives_the_user(registry: Any, alice: Any, argon2: Argon2Counter) -> None:
    assert login(registry).address == ALICE
    assert argon2.calls == 1 and argon2.off_thread


def test_the_address_is_case_insensitive(registry: Any, quick_alice: Any) -> None:
    assert login(registry, "  ALICE@Example.Test").id == quick_alice.id


def test_a_wrong_password_fails(registry: Any, quick_alice: Any) -> None:
    with pytest.raises(LoginFailed):
        login(registry, password="wrong-password")


def test_an_unknown_user_costs_the_same_argon2_work(registry: Any, argon2: Argon2Counter) -> None:
    with pytest.raises(LoginFailed):
        login(registry, "nobody@example.test")
    assert argon2.calls == 1 and argon2.off_thread


def test_empty_and_overlong_passwords_fail_without_hashing(registry: Any, quick_alice: Any,
                                                           argon2: Argon2Counter) -> None:
    for password in ("", "x" * (passwords.MAX_LENGTH + 1)):
        with pytest.raises(LoginFailed):
            login(registry, password=password)
    assert argon2.calls == 0


def test_a_disabled_user_cannot_log_in_even_from_the_cache(registry: Any, quick_alice: Any) -> None:
    login(registry)
    registry.db.sync.run("t", accounts.set_disabled, ALICE, True)
    with pytest.raises(LoginFailed):
        login(registry)


def test_a_cached_login_skips_argon2(registry: Any, alice: Any, argon2: Argon2Counter) -> None:
    for _ in range(5):
        assert login(registry).address == ALICE
    assert argon2.calls == 1


def test_the_cache_never_accepts_a_wrong_password(registry: Any, quick_alice: Any, argon2: Argon2Counter) -> None:
    login(registry)
    with pytest.raises(LoginFailed):
        login(registry, password=PASSWORD + "x")
    assert argon2.calls == 2


def test_the_cache_expires(registry: Any, quick_alice: Any, argon2: Argon2Counter) -> None:
    login(registry)
    registry.reactor.advance(registry.config.auth.credential_cache_ttl + 1)
    login(registry)
    assert argon2.calls == 2


def test_a_password_change_invalidates_the_cache_at_once(registry: Any, alice: Any) -> None:
    login(registry)
    registry.db.sync.run("t", accounts.set_password, ALICE, passwords.hash_password("new-Passw0rd"))
    with pytest.raises(LoginFailed):
        login(registry)
    assert login(registry, password="new-Passw0rd").address == ALICE


def test_a_zero_ttl_turns_the_cache_off(tmp_path: Any, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.harness import make_registry

    registry = make_registry(tmp_path / "nocache", db_url, auth={"credential_cache_ttl": "0"})
    add_user(registry, ALICE, PASSWORD)
    argon2 = Argon2Counter(registry, monkeypatch)
    login(registry)
    login(registry)
    assert argon2.calls == 2
    registry.db.close()


def app_password(registry: Any, address: str = ALICE, secret: str = "app-Secret-0123456789abcdef") -> int:
    return registry.db.sync.run("t", accounts.add_app_password, address, "phone",
                                registry.keys.mac("app-password", secret))


def test_an_app_password_works_without_argon2(registry: Any, alice: Any, argon2: Argon2Counter) -> None:
    app_password(registry)
    assert login(registry, password="app-Secret-0123456789abcdef").address == ALICE
    assert argon2.calls == 0


def test_an_app_password_works_only_for_its_own_user(registry: Any, quick_alice: Any) -> None:
    add_user(registry, "bob@example.test", "bob-Passw0rd", fast_hash=True)
    app_password(registry, "bob@example.test")
    with pytest.raises(LoginFailed):
        login(registry, password="app-Secret-0123456789abcdef")


def test_a_revoked_app_password_stops_working_at_once(registry: Any, quick_alice: Any) -> None:
    app_id = app_password(registry)
    login(registry, password="app-Secret-0123456789abcdef")
    registry.db.sync.run("t", accounts.revoke_app_password, ALICE, app_id)
    with pytest.raises(LoginFailed):
        login(registry, password="app-Secret-0123456789abcdef")


def test_repeated_failures_throttle_without_checking_the_password(registry: Any, quick_alice: Any,
                                                                  argon2: Argon2Counter) -> None:
    for _ in range(PAIR_POLICY.free + 1):
        with pytest.raises(LoginFailed):
            login(registry, password="guess-guess")
    calls = argon2.calls
    with capturedLogs() as events, pytest.raises(LoginThrottled) as caught:
        login(registry)  # even the right password waits
    assert caught.value.retry_after > 0
    assert argon2.calls == calls
    assert any(e.get("log_format", "").startswith("login_throttled") for e in events)
    # from another address the owner still gets in
    assert login(registry, ip="198.51.100.1").address == ALICE
    registry.reactor.advance(caught.value.retry_after)
    assert login(registry).address == ALICE


def test_a_success_resets_the_failure_count(registry: Any, quick_alice: Any) -> None:
    for _ in range(PAIR_POLICY.free - 1):
        with pytest.raises(LoginFailed):
            login(registry, password="typo-typo")
    login(registry)
    for _ in range(PAIR_POLICY.free - 1):
        with pytest.raises(LoginFailed):
            login(registry, password="typo-typo")
    assert login(registry).address == ALICE
