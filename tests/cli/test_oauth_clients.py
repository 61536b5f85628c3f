"""``tau oauth client add|list|remove``: registered OAuth clients, secrets shown once, stored hashed."""

from __future__ import annotations

import json
import re
from typing import Any

from tau.auth import oauth_clients
from tau.keys import Keys, load_secret

REDIRECT = "https://app.example.org/oauth/cb"


def stored(install: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in install.db_run(lambda txn: txn.query(
        "SELECT client_id, name, redirect_uris, secret_hash, native FROM oauth_clients ORDER BY name"))]


def test_add_list_remove_a_public_client(installed: Any) -> None:
    added = installed.run("oauth", "client", "add", "Notes", "--redirect-uri", REDIRECT,
                          "--redirect-uri", "http://127.0.0.1:8400/cb")
    assert added.code == 0, added.err
    client_id = re.search(r"^client_id: (\S+)$", added.out, re.MULTILINE).group(1)
    assert "secret" not in added.out
    assert stored(installed) == [(client_id, "Notes", REDIRECT + " http://127.0.0.1:8400/cb", None, 0)]

    listing = installed.run("oauth", "client", "list")
    assert listing.code == 0 and client_id in listing.out and REDIRECT in listing.out and "public" in listing.out
    items = json.loads(installed.run("oauth", "client", "list", "--json").out)
    assert [(i["client_id"], i["redirect_uris"], i["confidential"]) for i in items] == [
        (client_id, [REDIRECT, "http://127.0.0.1:8400/cb"], False)]

    removed = installed.run("oauth", "client", "remove", client_id)
    assert removed.code == 0, removed.err
    assert stored(installed) == []
    again = installed.run("oauth", "client", "remove", client_id)
    assert again.code == 1 and "no OAuth client" in again.err
    assert installed.run("oauth", "client", "list").out == "no OAuth clients registered\n"


def test_a_confidential_client_secret_is_shown_once_and_stored_hashed(installed: Any) -> None:
    added = installed.run("oauth", "client", "add", "Server app", "--redirect-uri", REDIRECT, "--confidential",
                          "--json")
    assert added.code == 0, added.err
    body = json.loads(added.out)
    secret = body["client_secret"]
    assert body["confidential"] and len(secret) >= 40
    keys = Keys(load_secret(installed.data_dir / "secret"))
    [(client_id, _, _, secret_hash, native)] = stored(installed)
    assert client_id == body["client_id"] and native == 0
    assert secret_hash == keys.mac(oauth_clients.MAC_LABEL, secret) and secret not in secret_hash
    listing = installed.run("oauth", "client", "list", "--json")
    assert secret not in listing.out and secret_hash not in listing.out
    text = installed.run("oauth", "client", "add", "Other", "--redirect-uri", REDIRECT, "--confidential")
    assert re.search(r"^    client_secret: \S{40,}$", text.out, re.MULTILINE), text.out
    assert "will not be shown again" in text.out


def test_a_native_client_needs_no_redirect_uri(installed: Any) -> None:
    added = installed.run("oauth", "client", "add", "Desktop", "--native", "--json")
    assert added.code == 0, added.err
    assert json.loads(added.out)["native"] is True and stored(installed)[0][4] == 1


def test_refusals(installed: Any) -> None:
    for uri in ("http://evil.example:1234\\@127.0.0.1/cb", "http://app.example.org/cb", "https://APP.example.org/",
                "https://app.example.org/cb#f", "https://u@app.example.org/cb", "https://app.example.org"):
        result = installed.run("oauth", "client", "add", "Bad", "--redirect-uri", uri)
        assert result.code == 1 and result.err.startswith("tau: "), (uri, result)
    assert installed.run("oauth", "client", "add", "NoUri").code == 1
    both = installed.run("oauth", "client", "add", "X", "--redirect-uri", REDIRECT, "--confidential", "--native")
    assert both.code == 2
    assert installed.run("oauth", "client", "add", "", "--redirect-uri", REDIRECT).code == 1
    assert stored(installed) == []
    assert installed.run("oauth", "client").code == 2 and installed.run("oauth").code == 2
