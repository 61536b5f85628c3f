"""``tau user ...``: accounts through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tau.auth import accounts, passwords


def stored_hash(install: Any, address: str) -> str:
    user = install.db_run(accounts.get_user, address)
    assert user is not None
    return str(user.password_hash)


def test_add_and_list(installed: Any) -> None:
    result = installed.run("user", "add", "Bob@Example.Test", "--password-stdin", "--display-name", "Bob B",
                           "--admin", "--quota", "5G", stdin="bob-password")
    assert result.code == 0, result.err
    assert result.out == "added bob@example.test (admin)\n"

    listing = installed.run("user", "list")
    assert listing.code == 0
    lines = listing.out.splitlines()
    assert lines[0].split() == ["ADDRESS", "STATUS", "ADMIN", "QUOTA", "NAME"]
    assert lines[1].split() == ["bob@example.test", "active", "yes", "5G", "Bob", "B"]

    items = json.loads(installed.run("user", "list", "--json").out)
    assert [(u["address"], u["admin"], u["quota_bytes"], u["display_name"], u["disabled"]) for u in items] == [
        ("bob@example.test", True, 5 * 1024**3, "Bob B", False)]
    assert "password_hash" not in items[0]


def test_list_by_domain_and_empty(installed: Any) -> None:
    assert installed.run("user", "list").out == "no users\n"
    assert json.loads(installed.run("user", "list", "--json").out) == []
    assert installed.run("domain", "add", "other.test").code == 0
    installed.run("user", "add", "carol@other.test", "--password-stdin", stdin="carol-password")
    assert json.loads(installed.run("user", "list", "--domain", "example.test", "--json").out) == []
    assert [u["address"] for u in json.loads(installed.run("user", "list", "--json", "--domain", "other.test").out)] \
        == ["carol@other.test"]


@pytest.mark.parametrize("stdin, password", [
    ("pass word 1\n", "pass word 1"),
    ("pass word 2\r\n", "pass word 2"),
    ("pass word 3", "pass word 3"),
    ("pass word 4\n\n", "pass word 4\n"),
    (" spaced pw \n", " spaced pw "),
])
def test_password_from_stdin_strips_one_newline(installed: Any, stdin: str, password: str) -> None:
    assert installed.run("user", "add", "dan@example.test", "--password-stdin", stdin=stdin).code == 0
    assert passwords.verify_password(stored_hash(installed, "dan@example.test"), password)


def test_passwd(with_alice: Any) -> None:
    before = stored_hash(with_alice, "alice@example.test")
    result = with_alice.run("user", "passwd", "alice@example.test", "--password-stdin", stdin="a-new-password\n")
    assert result.code == 0, result.err
    assert "alice@example.test" in result.out
    after = stored_hash(with_alice, "alice@example.test")
    assert after != before and passwords.verify_password(after, "a-new-password")


def test_passwd_unknown_user(installed: Any) -> None:
    result = installed.run("user", "passwd", "nobody@example.test", "--password-stdin", stdin="whatever-pw")
    assert (result.code, result.err) == (1, "tau: no user nobody@example.test\n")


def test_weak_password_refused(installed: Any) -> None:
    result = installed.run("user", "add", "eve@example.test", "--password-stdin", stdin="short\n")
    assert result.code == 1
    assert result.err == "tau: password must be at least 8 characters\n"
    assert installed.db_run(accounts.get_user, "eve@example.test") is None


def test_empty_stdin_refused(installed: Any) -> None:
    assert installed.run("user", "add", "eve@example.test", "--password-stdin", stdin="").code == 1


def test_no_password_source_without_a_terminal(installed: Any) -> None:
    result = installed.run("user", "add", "eve@example.test")
    assert result.code == 1
    assert "--password-stdin" in result.err
    assert installed.db_run(accounts.get_user, "eve@example.test") is None


def test_password_typed_twice_on_a_terminal(installed: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr("tau.cli.users.stdin_is_tty", lambda: True)
    answers = iter(["typed-password", "typed-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert installed.run("user", "add", "tty@example.test").code == 0
    assert passwords.verify_password(stored_hash(installed, "tty@example.test"), "typed-password")

    answers = iter(["typed-password", "different-one"])
    result = installed.run("user", "add", "tty2@example.test")
    assert (result.code, result.err) == (1, "tau: the passwords do not match\n")


def test_duplicate_user(with_alice: Any) -> None:
    result = with_alice.run("user", "add", "ALICE@example.test", "--password-stdin", stdin="another-password")
    assert result.code == 1
    assert result.err == "tau: user alice@example.test exists already\n"


def test_unknown_domain(installed: Any) -> None:
    result = installed.run("user", "add", "frank@nowhere.test", "--password-stdin", stdin="frank-password")
    assert result.code == 1
    assert "nowhere.test" in result.err and result.err.startswith("tau: ")
    assert "Traceback" not in result.err


@pytest.mark.parametrize("address", ["no-at-sign", "two@@example.test", "a b@example.test", "@example.test"])
def test_invalid_address(installed: Any, address: str) -> None:
    result = installed.run("user", "add", address, "--password-stdin", stdin="valid-password")
    assert result.code == 1
    assert result.err.startswith("tau: not a valid address")


def test_bad_quota_is_a_usage_error(installed: Any) -> None:
    result = installed.run("user", "add", "q@example.test", "--quota", "lots", "--password-stdin", stdin="x" * 10)
    assert result.code == 2
    assert "not a size" in result.err


def test_disable_enable(with_alice: Any) -> None:
    assert with_alice.run("user", "disable", "alice@example.test").out == "alice@example.test disabled\n"
    assert with_alice.db_run(accounts.get_user, "alice@example.test").disabled
    assert json.loads(with_alice.run("user", "list", "--json").out)[0]["disabled"] is True
    assert "disabled" in with_alice.run("user", "list").out
    assert with_alice.run("user", "enable", "alice@example.test").code == 0
    assert not with_alice.db_run(accounts.get_user, "alice@example.test").disabled
    assert with_alice.run("user", "disable", "ghost@example.test").code == 1


def test_delete(with_alice: Any) -> None:
    refused = with_alice.run("user", "delete", "alice@example.test")
    assert refused.code == 1 and "--yes" in refused.err
    assert with_alice.db_run(accounts.get_user, "alice@example.test") is not None

    result = with_alice.run("user", "delete", "alice@example.test", "--yes")
    assert (result.code, result.out) == (0, "deleted alice@example.test\n")
    assert with_alice.db_run(accounts.get_user, "alice@example.test") is None
    again = with_alice.run("user", "delete", "alice@example.test", "--yes")
    assert (again.code, again.err) == (1, "tau: no user alice@example.test\n")


def test_delete_asks_on_a_terminal(with_alice: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr("tau.cli.common.stdin_is_tty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt="": "n")
    assert with_alice.run("user", "delete", "alice@example.test").code == 1
    assert with_alice.db_run(accounts.get_user, "alice@example.test") is not None
    monkeypatch.setattr("builtins.input", lambda prompt="": "yes")
    assert with_alice.run("user", "delete", "alice@example.test").code == 0
    assert with_alice.db_run(accounts.get_user, "alice@example.test") is None


def test_user_group_without_action_is_a_usage_error(tau: Any) -> None:
    result = tau("user")
    assert result.code == 2
    assert "passwd" in result.err
