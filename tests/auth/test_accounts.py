"""TauID accounts on both engines: addresses, domains, users, aliases, catch-alls, app passwords."""

from __future__ import annotations

from typing import Any

import pytest

from tau.auth import accounts
from tau.auth.accounts import AccountError, normalize_address, normalize_domain


def run(registry: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    return registry.db.sync.run(fn.__name__, fn, *args, **kwargs)


def refused(code: str, registry: Any, fn: Any, *args: Any) -> AccountError:
    with pytest.raises(AccountError) as caught:
        run(registry, fn, *args)
    assert caught.value.code == code
    return caught.value


# -- normalisation -----------------------------------------------------------------------------

def test_addresses_are_lower_cased_and_trimmed() -> None:
    assert normalize_address("  Alice.Smith@Example.TEST ") == "alice.smith@example.test"


def test_international_domains_become_punycode() -> None:
    assert normalize_domain("Bücher.Example.") == "xn--bcher-kva.example"


@pytest.mark.parametrize("bad", ["alice", "@example.test", "alice@", "a@b@example.test", "al ice@example.test",
                                 "alice@-example.test", "alice@example", "a..b@example.test",
                                 "x" * 65 + "@example.test", "alice@exa_mple.test", ""])
def test_malformed_addresses_are_refused(bad: str) -> None:
    with pytest.raises(AccountError) as caught:
        normalize_address(bad)
    assert caught.value.code in ("invalid_address", "invalid_domain")


# -- domains and users -------------------------------------------------------------------------

def test_a_user_needs_a_served_domain(registry: Any) -> None:
    exc = refused("domain_not_found", registry, accounts.add_user, "bob@elsewhere.test", None)
    assert "tau domain add elsewhere.test" in exc.message


def test_a_user_is_stored_under_the_normalised_address(registry: Any) -> None:
    user = run(registry, accounts.add_user, "Bob@Example.Test", "hash")
    assert user.address == "bob@example.test" and user.domain == "example.test"
    assert run(registry, accounts.get_user, "BOB@example.test").id == user.id


def test_duplicate_users_are_refused_whatever_the_case(registry: Any) -> None:
    run(registry, accounts.add_user, "bob@example.test", "hash")
    refused("user_exists", registry, accounts.add_user, "BOB@Example.test", "hash")


def test_duplicate_domains_are_refused(registry: Any) -> None:
    refused("domain_exists", registry, accounts.add_domain, "EXAMPLE.test")


def test_a_domain_with_users_cannot_be_deleted(registry: Any) -> None:
    run(registry, accounts.add_user, "bob@example.test", "hash")
    refused("domain_in_use", registry, accounts.delete_domain, "example.test")
    run(registry, accounts.delete_user, "bob@example.test")
    run(registry, accounts.delete_domain, "example.test")
    assert run(registry, accounts.list_domains) == []


def test_listing_users_by_domain_does_not_leak_other_domains(registry: Any) -> None:
    run(registry, accounts.add_domain, "example.org")
    run(registry, accounts.add_user, "a@example.test", "h")
    run(registry, accounts.add_user, "b@example.org", "h")
    assert [u.address for u in run(registry, accounts.list_users, "example.org")] == ["b@example.org"]
    assert [u.address for u in run(registry, accounts.list_users)] == ["a@example.test", "b@example.org"]


def test_unknown_user_lookups_are_none_not_errors(registry: Any) -> None:
    assert run(registry, accounts.get_user, "nobody@example.test") is None
    assert run(registry, accounts.get_user, "not an address") is None


# -- aliases and catch-all ---------------------------------------------------------------------

@pytest.fixture
def people(registry: Any) -> Any:
    for name in ("alice", "bob"):
        run(registry, accounts.add_user, f"{name}@example.test", "hash")
    return registry


def test_a_user_receives_their_own_mail(people: Any) -> None:
    assert run(people, accounts.resolve_recipient, "Alice@Example.test") == ["alice@example.test"]


def test_an_alias_delivers_to_its_destinations(people: Any) -> None:
    run(people, accounts.add_alias, "team@example.test", "alice@example.test")
    run(people, accounts.add_alias, "team@example.test", "bob@example.test")
    assert sorted(run(people, accounts.resolve_recipient, "team@example.test")) == ["alice@example.test",
                                                                                  "bob@example.test"]


def test_a_catch_all_takes_unknown_local_parts_only(people: Any) -> None:
    run(people, accounts.add_alias, "@example.test", "bob@example.test")
    assert run(people, accounts.resolve_recipient, "anything@example.test") == ["bob@example.test"]
    assert run(people, accounts.resolve_recipient, "alice@example.test") == ["alice@example.test"]


def test_without_catch_all_an_unknown_recipient_resolves_to_nothing(people: Any) -> None:
    assert run(people, accounts.resolve_recipient, "nobody@example.test") == []
    assert run(people, accounts.resolve_recipient, "garbage") == []


def test_a_disabled_user_receives_nothing_directly(people: Any) -> None:
    run(people, accounts.set_disabled, "alice@example.test", True)
    assert run(people, accounts.resolve_recipient, "alice@example.test") == []


def test_an_alias_to_a_missing_local_user_is_refused(people: Any) -> None:
    refused("user_not_found", people, accounts.add_alias, "x@example.test", "ghost@example.test")


def test_an_alias_may_forward_to_a_remote_address(people: Any) -> None:
    run(people, accounts.add_alias, "fwd@example.test", "someone@remote.test")
    assert run(people, accounts.resolve_recipient, "fwd@example.test") == ["someone@remote.test"]


def test_duplicate_aliases_are_refused(people: Any) -> None:
    run(people, accounts.add_alias, "team@example.test", "alice@example.test")
    refused("alias_exists", people, accounts.add_alias, "TEAM@example.test", "alice@example.test")


def test_deleting_a_user_removes_aliases_pointing_at_them(people: Any) -> None:
    run(people, accounts.add_alias, "team@example.test", "alice@example.test")
    run(people, accounts.delete_user, "alice@example.test")
    assert run(people, accounts.list_aliases) == []


def test_a_user_may_send_as_own_address_and_own_aliases_only(people: Any) -> None:
    run(people, accounts.add_alias, "sales@example.test", "alice@example.test")
    alice = run(people, accounts.get_user, "alice@example.test")
    assert run(people, accounts.user_may_send_as, alice, "ALICE@example.test")
    assert run(people, accounts.user_may_send_as, alice, "sales@example.test")
    assert not run(people, accounts.user_may_send_as, alice, "bob@example.test")
    assert not run(people, accounts.user_may_send_as, alice, "not an address")


# -- app passwords -----------------------------------------------------------------------------

def test_app_passwords_belong_to_their_user(people: Any) -> None:
    app_id = run(people, accounts.add_app_password, "alice@example.test", "phone", "hash-1")
    assert run(people, accounts.find_app_password, "alice@example.test", "hash-1").address == "alice@example.test"
    assert run(people, accounts.find_app_password, "bob@example.test", "hash-1") is None
    listed = run(people, accounts.list_app_passwords, "alice@example.test")
    assert [(i["id"], i["name"]) for i in listed] == [(app_id, "phone")]
    assert listed[0]["last_used_at"] is None or isinstance(listed[0]["last_used_at"], int)


def test_using_an_app_password_records_when(people: Any) -> None:
    run(people, accounts.add_app_password, "alice@example.test", "phone", "hash-1")
    run(people, accounts.find_app_password, "alice@example.test", "hash-1")
    assert run(people, accounts.list_app_passwords, "alice@example.test")[0]["last_used_at"] is not None


def test_another_user_cannot_revoke_my_app_password(people: Any) -> None:
    app_id = run(people, accounts.add_app_password, "alice@example.test", "phone", "hash-1")
    refused("app_password_not_found", people, accounts.revoke_app_password, "bob@example.test", app_id)
    run(people, accounts.revoke_app_password, "alice@example.test", app_id)
    assert run(people, accounts.find_app_password, "alice@example.test", "hash-1") is None


def test_app_password_names_must_be_sensible(people: Any) -> None:
    refused("invalid_name", people, accounts.add_app_password, "alice@example.test", "", "h")
    refused("invalid_name", people, accounts.add_app_password, "alice@example.test", "n" * 101, "h")
