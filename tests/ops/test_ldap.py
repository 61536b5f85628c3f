"""LDAP logins against a real slapd: bind as the user, provisioning, admin mapping, cache, outage."""

from __future__ import annotations

from typing import Any

import pytest

from tau.auth import accounts
from tau.auth.authenticator import LoginFailed
from tau.auth.ldap import DirectoryUnavailable, LdapDirectory
from tests.support.harness import add_user, resolve


def login(reg: Any, address: str, password: str) -> Any:
    return resolve(reg.authenticator.authenticate(address, password, "192.0.2.1"))


def test_first_login_provisions_from_directory(ldap_registry: Any) -> None:
    user = login(ldap_registry, "bob@example.test", "bob-ldap-Pa55")
    assert (user.address, user.source, user.display_name, user.is_admin, user.password_hash) == \
        ("bob@example.test", "ldap", "Bob Builder", False, None)
    carol = login(ldap_registry, "Carol@Example.test", "carol-ldap-Pa55")
    assert carol.is_admin and carol.source == "ldap"
    # second login: same row, no duplicate
    assert login(ldap_registry, "bob@example.test", "bob-ldap-Pa55").id == user.id


def test_wrong_password_unknown_user_and_filter_injection(ldap_registry: Any) -> None:
    for address, password in [("bob@example.test", "wrong"), ("nobody@example.test", "x-Pa55-long"),
                              ("*", "bob-ldap-Pa55"), ("*)(mail=*", "bob-ldap-Pa55"), ("bob@example.test", "")]:
        with pytest.raises(LoginFailed):
            login(ldap_registry, address, password)
    assert ldap_registry.db.sync.run("u", accounts.get_user, "nobody@example.test") is None


def test_local_accounts_do_not_use_directory_and_keep_working_when_it_is_down(ldap_registry: Any) -> None:
    add_user(ldap_registry, "alice@example.test", fast_hash=True)
    assert login(ldap_registry, "alice@example.test", "secret-Pa55").source == "local"
    directory: LdapDirectory = ldap_registry.authenticator.directory
    login(ldap_registry, "bob@example.test", "bob-ldap-Pa55")  # cached for cache_ttl
    directory.url = "ldap://127.0.0.1:1"  # the directory "goes down"
    directory.timeout = 1
    assert login(ldap_registry, "alice@example.test", "secret-Pa55").address == "alice@example.test"
    # a cached directory login rides out the outage; an uncached one is refused and reported
    assert login(ldap_registry, "bob@example.test", "bob-ldap-Pa55").source == "ldap"
    with pytest.raises(LoginFailed):
        login(ldap_registry, "carol@example.test", "carol-ldap-Pa55")
    assert directory.last_error and "127.0.0.1:1" in directory.last_error
    with pytest.raises(DirectoryUnavailable):
        resolve(ldap_registry.health_checks["ldap"]())
    ldap_registry.reactor.advance(3600)  # the cache expires: now bob is refused too
    with pytest.raises(LoginFailed):
        login(ldap_registry, "bob@example.test", "bob-ldap-Pa55")


def test_local_user_with_same_address_is_not_taken_over(ldap_registry: Any) -> None:
    add_user(ldap_registry, "bob@example.test", password="local-Pa55-word", fast_hash=True)
    with pytest.raises(LoginFailed):
        login(ldap_registry, "bob@example.test", "bob-ldap-Pa55")
    assert login(ldap_registry, "bob@example.test", "local-Pa55-word").source == "local"


def test_health_check_passes_when_directory_is_up(ldap_registry: Any) -> None:
    resolve(ldap_registry.health_checks["ldap"]())
    assert ldap_registry.services["ldap"] == "ok"
