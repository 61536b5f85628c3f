"""The one twisted.cred portal every protocol logs in through: password and app-password
checkers, the Bearer (JWT) checker, and the realm handing out per-protocol avatars."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.cred import credentials, error
from zope.interface import Interface

from tau.auth import accounts
from tau.auth.portal import BearerToken, IAccount, UsernamePasswordFrom
from tau.testing.harness import add_user, resolve

ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
OTHER_HASH = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$1hG5jPfbyJ9cI7OtvL5hdQ"  # of some other password


@pytest.fixture
def alice(registry: Any) -> Any:
    return add_user(registry, ALICE, PASSWORD, fast_hash=True)


def login(registry: Any, creds: Any, *interfaces: Any) -> tuple[Any, Any, Any]:
    return resolve(registry.portal.login(creds, None, *(interfaces or (IAccount,))))


def test_a_password_login_gives_the_account_avatar(registry: Any, alice: Any) -> None:
    iface, avatar, logout = login(registry, UsernamePasswordFrom(b"alice@example.test", b"secret-Pa55", "192.0.2.1"))
    assert iface is IAccount and avatar.address == ALICE
    logout()


def test_plain_twisted_username_password_works_too(registry: Any, alice: Any) -> None:
    _, avatar, _ = login(registry, credentials.UsernamePassword(b"ALICE@example.test", b"secret-Pa55"))
    assert avatar.id == alice.id


def test_a_wrong_password_is_unauthorized(registry: Any, alice: Any) -> None:
    with pytest.raises(error.UnauthorizedLogin):
        login(registry, UsernamePasswordFrom("alice@example.test", "nope-nope", "192.0.2.1"))


def test_non_utf8_credentials_are_unauthorized_not_a_crash(registry: Any, alice: Any) -> None:
    with pytest.raises(error.UnauthorizedLogin):
        login(registry, UsernamePasswordFrom(b"alice@example.test\xff", b"\xfe\xff", None))


def test_an_app_password_logs_in_through_the_portal(registry: Any, alice: Any) -> None:
    secret = registry.keys.mac("app-password", "app-XYZ-123456")
    registry.db.sync.run("t", accounts.add_app_password, ALICE, "mutt", secret)
    _, avatar, _ = login(registry, UsernamePasswordFrom(ALICE, "app-XYZ-123456", None))
    assert avatar.address == ALICE


def test_a_bearer_token_logs_in_as_its_subject(registry: Any, alice: Any) -> None:
    _, avatar, _ = login(registry, BearerToken(registry.tokens.issue(ALICE)))
    assert avatar.address == ALICE


def test_a_forged_bearer_token_is_unauthorized(registry: Any, alice: Any) -> None:
    with pytest.raises(error.UnauthorizedLogin):
        login(registry, BearerToken("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZUBleGFtcGxlLnRlc3QifQ.c2ln"))


def test_a_disabled_user_gets_no_avatar_with_any_credential(registry: Any, alice: Any) -> None:
    token = registry.tokens.issue(ALICE)
    registry.db.sync.run("t", accounts.set_disabled, ALICE, True)
    registry.reactor.advance(60)  # past the user cache
    for creds in (UsernamePasswordFrom(ALICE, PASSWORD, None), BearerToken(token)):
        with pytest.raises(error.UnauthorizedLogin):
            login(registry, creds)


def test_a_token_issued_before_a_password_change_is_unauthorized(registry: Any, alice: Any) -> None:
    old = registry.tokens.issue(ALICE)
    registry.reactor.advance(10)  # the change happens 10 s later
    registry.db.sync.run("t", accounts.set_password, ALICE, OTHER_HASH)
    registry.reactor.advance(1)
    with pytest.raises(error.UnauthorizedLogin):
        login(registry, BearerToken(old))
    _, avatar, _ = login(registry, BearerToken(registry.tokens.issue(ALICE)))
    assert avatar.address == ALICE


class IMailAccount(Interface):
    pass


class Mailbox:
    def __init__(self, user: Any) -> None:
        self.user = user
        self.logged_out = False

    def logout(self) -> None:
        self.logged_out = True


def test_protocols_register_their_own_avatars(registry: Any, alice: Any) -> None:
    registry.realm.register(IMailAccount, Mailbox)
    iface, avatar, logout = login(registry, UsernamePasswordFrom(ALICE, PASSWORD, None), IMailAccount)
    assert iface is IMailAccount and isinstance(avatar, Mailbox) and avatar.user.address == ALICE
    logout()
    assert avatar.logged_out


def test_an_interface_nobody_provides_is_an_error(registry: Any, alice: Any) -> None:
    with pytest.raises(NotImplementedError):
        login(registry, UsernamePasswordFrom(ALICE, PASSWORD, None), IMailAccount)
