"""``tau oauth client add|list|remove``: the OAuth clients allowed to ask users for access.

Registered redirect URIs match exactly (:mod:`tau.auth.redirects`). ``--confidential`` clients get
a secret, shown once and stored only as a keyed hash; they must authenticate at /oauth2/token.
``--native`` public clients may also use loopback redirects with any port (RFC 8252 §7.3).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tau.auth import oauth_clients
from tau.auth.oauth_clients import ClientError
from tau.cli.common import (
    EXIT_OK,
    CliError,
    add_action,
    add_group,
    format_time,
    keys_for,
    load,
    open_database,
    print_json,
    print_listing,
    print_secret_once,
    run_store,
)


def register(subparsers: Any) -> None:
    topics = add_group(subparsers, "oauth", "manage OAuth clients (apps that ask users for access)",
                       dest="topic", metavar="TOPIC")
    sub = add_group(topics, "client",
                    "add, list and remove registered OAuth clients")

    p = add_action(sub, "add", "register a client; prints its client_id (and secret, once)", add)
    p.add_argument("name", metavar="NAME", help="shown to users on the consent page's records")
    p.add_argument("--redirect-uri", dest="redirect_uris", action="append", default=[], metavar="URI",
                   help="an exact redirect URI (repeat for several); https, or http to 127.0.0.1/[::1]")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--confidential", action="store_true",
                      help="a server-side app that keeps a secret and authenticates at /oauth2/token")
    kind.add_argument("--native", action="store_true",
                      help="a public native app: loopback redirects with any port are allowed too")
    p.add_argument("--json", action="store_true", help="print a JSON object (with the secret, if any)")
    add_action(sub, "list", "list registered clients (never their secrets)", list_, json=True)
    p = add_action(sub, "remove", "remove a client and revoke the tokens it was given", remove)
    p.add_argument("client_id", metavar="ID", help="as shown by `tau oauth client list`")


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ClientError as exc:
        raise CliError(exc.message)


def add(args: argparse.Namespace) -> int:
    config = load(args)
    reg = _run(lambda: oauth_clients.validate(args.name, args.redirect_uris, args.confidential, args.native))
    secret = oauth_clients.new_secret() if reg.confidential else None
    secret_hash = keys_for(config).mac(oauth_clients.MAC_LABEL, secret) if secret else None
    with open_database(config) as db:
        client = _run(lambda: db.run("cli_oauth_client_add", oauth_clients.add_client,
                                     oauth_clients.new_client_id(), reg, secret_hash))
    if args.json:
        print_json({**client.public(), "client_secret": secret})
        return EXIT_OK
    kind = "confidential" if client.confidential else "native public" if client.native else "public"
    print(f"registered {kind} OAuth client {client.name!r}")
    print(f"client_id: {client.client_id}")
    if secret:
        print_secret_once(f"client_secret: {secret}", "Store the secret in the application")
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    clients = run_store(load(args), "cli_oauth_client_list", oauth_clients.list_clients, readonly=True)
    return print_listing(args, clients, "no OAuth clients registered",
                         ["CLIENT ID", "NAME", "KIND", "CREATED", "REDIRECT URIS"],
                         lambda c: [c.client_id, c.name,
                                    "confidential" if c.confidential else "native" if c.native else "public",
                                    format_time(c.created_at), " ".join(c.redirect_uris) or "-"],
                         public=lambda c: c.public())


def remove(args: argparse.Namespace) -> int:
    config = load(args)
    _run(lambda: run_store(config, "cli_oauth_client_remove", oauth_clients.remove_client, args.client_id))
    print(f"removed OAuth client {args.client_id} (its refresh tokens are revoked)")
    return EXIT_OK
