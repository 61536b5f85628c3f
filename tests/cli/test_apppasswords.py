"""``tau apppassword ...``: generated once, stored only as a keyed hash."""

from __future__ import annotations

import json
import re
from typing import Any

from tau.auth import accounts
from tau.keys import Keys, load_secret

PASSWORD = re.compile(r"^    ([a-z2-9]{5}(?:-[a-z2-9]{5}){4})$", re.MULTILINE)


def token_hashes(install: Any) -> list[str]:
    return [r[0] for r in install.db_run(lambda txn: txn.query("SELECT token_hash FROM app_passwords"))]


def test_add_list_revoke(with_alice: Any) -> None:
    result = with_alice.run("apppassword", "add", "alice@example.test", "phone")
    assert result.code == 0, result.err
    match = PASSWORD.search(result.out)
    assert match, result.out
    password = match.group(1)
    assert not set(password) & set("01ilo")

    keys = Keys(load_secret(with_alice.data_dir / "secret"))
    assert token_hashes(with_alice) == [keys.mac("app-password", password)]
    assert with_alice.db_run(accounts.find_app_password, "alice@example.test",
                             keys.mac("app-password", password)).address == "alice@example.test"

    listing = with_alice.run("apppassword", "list", "alice@example.test")
    assert listing.code == 0 and "phone" in listing.out and password not in listing.out
    items = json.loads(with_alice.run("apppassword", "list", "alice@example.test", "--json").out)
    assert [(i["name"], i["last_used_at"] is not None) for i in items] == [("phone", True)]
    assert password not in json.dumps(items)

    revoked = with_alice.run("apppassword", "revoke", "alice@example.test", str(items[0]["id"]))
    assert revoked.code == 0, revoked.err
    assert token_hashes(with_alice) == []
    again = with_alice.run("apppassword", "revoke", "alice@example.test", str(items[0]["id"]))
    assert again.code == 1 and "no app password" in again.err


def test_each_password_is_new_and_json_output(with_alice: Any) -> None:
    first = json.loads(with_alice.run("apppassword", "add", "alice@example.test", "laptop", "--json").out)
    second = json.loads(with_alice.run("apppassword", "add", "alice@example.test", "laptop", "--json").out)
    assert first["password"] != second["password"]
    assert (first["address"], first["name"]) == ("alice@example.test", "laptop")
    assert len(token_hashes(with_alice)) == 2


def test_refusals(with_alice: Any) -> None:
    unknown = with_alice.run("apppassword", "add", "ghost@example.test", "phone")
    assert (unknown.code, unknown.err) == (1, "tau: no user ghost@example.test\n")
    assert with_alice.run("apppassword", "add", "alice@example.test", "x" * 101).code == 1
    assert with_alice.run("apppassword", "list", "ghost@example.test").code == 1
    assert with_alice.run("apppassword", "revoke", "alice@example.test", "abc").code == 2
    listed = with_alice.run("apppassword", "list", "alice@example.test")
    assert listed.out == "alice@example.test has no app passwords\n"


def test_unreadable_secret_is_a_configuration_error(with_alice: Any) -> None:
    (with_alice.data_dir / "secret").chmod(0o644)
    result = with_alice.run("apppassword", "add", "alice@example.test", "phone")
    assert result.code == 2
    assert "chmod 600" in result.err and result.err.count("\n") == 1
