"""``tau user send-as add|remove|list``: shared addresses a user may send from (issue 13, item 4)."""

from __future__ import annotations

import json
from typing import Any

from tau.auth import accounts


def may_send_as(install: Any, user: str, address: str) -> bool:
    return bool(install.db_run(lambda txn: accounts.user_may_send_as(txn, accounts.require_user(txn, user), address)))


def test_grant_list_and_revoke(with_alice: Any) -> None:
    assert not may_send_as(with_alice, "alice@example.test", "shared@example.test")
    added = with_alice.run("user", "send-as", "add", "Alice@Example.Test", "Shared@Example.Test")
    assert (added.code, added.out) == (0, "alice@example.test may send as shared@example.test\n"), added.err
    assert may_send_as(with_alice, "alice@example.test", "shared@example.test")

    listing = with_alice.run("user", "send-as", "list", "alice@example.test")
    assert listing.out.splitlines()[0].split() == ["USER", "ADDRESS"]
    assert listing.out.splitlines()[1].split() == ["alice@example.test", "shared@example.test"]
    items = json.loads(with_alice.run("user", "send-as", "list", "--json").out)
    assert [(g["user"], g["address"]) for g in items] == [("alice@example.test", "shared@example.test")]

    again = with_alice.run("user", "send-as", "add", "alice@example.test", "shared@example.test")
    assert again.code == 1 and "may already send as" in again.err
    removed = with_alice.run("user", "send-as", "remove", "alice@example.test", "shared@example.test")
    assert removed.out == "alice@example.test may no longer send as shared@example.test\n"
    assert not may_send_as(with_alice, "alice@example.test", "shared@example.test")
    assert with_alice.run("user", "send-as", "list").out == "no send-as grants\n"
    missing = with_alice.run("user", "send-as", "remove", "alice@example.test", "shared@example.test")
    assert missing.code == 1 and "no send-as grant" in missing.err


def test_only_local_domains_and_existing_users(with_alice: Any) -> None:
    foreign = with_alice.run("user", "send-as", "add", "alice@example.test", "ceo@bank.test")
    assert foreign.code == 1 and "not in a domain served here" in foreign.err
    nobody = with_alice.run("user", "send-as", "add", "nobody@example.test", "shared@example.test")
    assert nobody.code == 1 and "nobody@example.test" in nobody.err
    assert with_alice.run("user", "send-as", "add", "alice@example.test", "not an address").code == 1


def test_grants_go_with_the_user(with_alice: Any) -> None:
    assert with_alice.run("user", "send-as", "add", "alice@example.test", "shared@example.test").code == 0
    assert with_alice.run("user", "delete", "alice@example.test", "--yes").code == 0
    assert with_alice.db_run(lambda txn: txn.query("SELECT address FROM send_as")) == []
