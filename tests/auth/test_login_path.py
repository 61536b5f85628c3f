"""One login path: every protocol that takes a password calls ``registry.authenticator``, and LDAP is
a checker it is built with (not a patch applied by the plugin after construction)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tau.auth import accounts
from tau.auth.authenticator import LoginFailed, TokenRefused
from tau.auth.ldap import LdapDirectory
from tests.support.harness import add_user, make_registry, resolve

ROOT = Path(__file__).resolve().parents[2] / "tau"
ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
#: the modules that check a password, all through the authenticator
CALLERS = {"http/auth.py", "auth/oauth.py", "http/consent.py", "mail/smtp/commands.py", "mail/imap/auth.py",
           "mail/sieve/managesieve.py"}


def test_every_password_check_goes_through_the_authenticator() -> None:
    callers = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
               if "authenticator.authenticate(" in p.read_text(encoding="utf-8")}
    assert callers == CALLERS
    for path in ROOT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "verify_password(" not in text or path.name in {"passwords.py", "authenticator.py"}, path
        assert "from twisted.cred" not in text, path


def test_the_ldap_directory_is_built_into_the_login_path(tmp_path: Path, db_url: str) -> None:
    reg = make_registry(tmp_path / "tau", db_url, ldap={"url": "ldap://127.0.0.1:1", "base_dn": "dc=example"})
    try:
        directory = reg.authenticator.directory
        assert isinstance(directory, LdapDirectory) and directory.url == "ldap://127.0.0.1:1"
    finally:
        reg.db.close()


def test_without_ldap_there_is_no_directory(registry: Any) -> None:
    assert registry.authenticator.directory is None


@pytest.fixture
def alice(registry: Any) -> Any:
    return add_user(registry, ALICE, PASSWORD, fast_hash=True)


def login(registry: Any, address: str, password: str) -> Any:
    return resolve(registry.authenticator.authenticate(address, password, "192.0.2.1"))


def test_a_password_or_an_app_password_logs_in(registry: Any, alice: Any) -> None:
    assert login(registry, "ALICE@example.test", PASSWORD).id == alice.id
    registry.db.sync.run("t", accounts.add_app_password, ALICE, "mutt", registry.keys.mac("app-password", "app-XYZ-1"))
    assert login(registry, ALICE, "app-XYZ-1").address == ALICE


def test_a_disabled_user_cannot_log_in(registry: Any, alice: Any) -> None:
    registry.db.sync.run("t", accounts.set_disabled, ALICE, True)
    with pytest.raises(LoginFailed):
        login(registry, ALICE, PASSWORD)


def test_a_bearer_token_logs_in_through_the_same_object(registry: Any, alice: Any) -> None:
    user, claims = resolve(registry.authenticator.authenticate_token(registry.tokens.issue(ALICE)))
    assert user.address == claims["sub"] == ALICE
    with pytest.raises(TokenRefused, match="invalid or expired"):
        resolve(registry.authenticator.authenticate_token("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"))
