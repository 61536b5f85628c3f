"""``tau domain ...`` and ``tau alias ...``."""

from __future__ import annotations

import json
from typing import Any

from tau.auth import accounts


def test_domain_add_list_delete(installed: Any) -> None:
    result = installed.run("domain", "add", "Other.Test")
    assert result.code == 0, result.err
    assert result.out.startswith("added domain other.test\n")
    assert installed.run("domain", "add", "other.test").code == 1

    items = json.loads(installed.run("domain", "list", "--json").out)
    assert [(d["name"], d["users"]) for d in items] == [("example.test", 0), ("other.test", 0)]
    text = installed.run("domain", "list").out.splitlines()
    assert text[0].split() == ["DOMAIN", "USERS", "ADDED"]
    assert [line.split()[0] for line in text[1:]] == ["example.test", "other.test"]

    assert installed.run("domain", "delete", "other.test").out == "deleted domain other.test\n"
    assert [d["name"] for d in json.loads(installed.run("domain", "list", "--json").out)] == ["example.test"]
    missing = installed.run("domain", "delete", "other.test")
    assert (missing.code, missing.err) == (1, "tau: no domain other.test\n")
    assert installed.run("domain", "add", "bad_domain!").code == 1


def test_domain_with_users_is_not_deleted(with_alice: Any) -> None:
    result = with_alice.run("domain", "delete", "example.test")
    assert result.code == 1
    assert "still has 1 user" in result.err


def test_alias_and_catch_all(with_alice: Any) -> None:
    assert with_alice.run("alias", "add", "Info@Example.Test", "alice@example.test").out == \
        "alias info@example.test -> alice@example.test\n"
    assert with_alice.run("alias", "add", "@example.test", "alice@example.test").out == \
        "alias @example.test -> alice@example.test\n"
    assert with_alice.run("alias", "add", "info@example.test", "someone@elsewhere.org").code == 0

    items = json.loads(with_alice.run("alias", "list", "--json").out)
    assert items == [{"address": "@example.test", "destination": "alice@example.test"},
                     {"address": "info@example.test", "destination": "alice@example.test"},
                     {"address": "info@example.test", "destination": "someone@elsewhere.org"}]
    assert with_alice.run("alias", "list", "--domain", "example.test").out.splitlines()[0].split() == \
        ["ADDRESS", "DESTINATION"]
    assert with_alice.db_run(accounts.resolve_recipient, "anything@example.test") == ["alice@example.test"]

    duplicate = with_alice.run("alias", "add", "info@example.test", "alice@example.test")
    assert duplicate.code == 1 and "exists already" in duplicate.err

    assert with_alice.run("alias", "delete", "info@example.test", "someone@elsewhere.org").out == \
        "deleted 1 alias of info@example.test\n"
    assert with_alice.run("alias", "delete", "@example.test").code == 0
    assert [a["address"] for a in json.loads(with_alice.run("alias", "list", "--json").out)] == ["info@example.test"]
    missing = with_alice.run("alias", "delete", "nope@example.test")
    assert (missing.code, missing.err) == (1, "tau: no alias nope@example.test\n")


def test_alias_refusals(with_alice: Any) -> None:
    ghost = with_alice.run("alias", "add", "x@example.test", "ghost@example.test")
    assert ghost.code == 1 and "ghost@example.test" in ghost.err
    foreign = with_alice.run("alias", "add", "x@nowhere.test", "alice@example.test")
    assert foreign.code == 1 and "nowhere.test" in foreign.err
    assert with_alice.run("alias", "add", "not-an-address", "alice@example.test").code == 1
    assert with_alice.run("alias", "list").out == "no aliases\n"
