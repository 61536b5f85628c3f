"""Registered OAuth clients: what the CLI and admin API add, list and remove, and what the consent
page and token endpoint look up.

A client is *public* (no secret: SPAs, native apps; PKCE is what protects its codes) or
*confidential* (a server that keeps a secret and must authenticate at ``/oauth2/token``). Its
redirect URIs are stored in canonical form and match exactly (:mod:`tau.auth.redirects`). Only a
public client flagged *native* may also use loopback redirects with any port (RFC 8252 §7.3).
Client ids that are not registered are treated as native public clients (loopback only), as
before registration existed. Secrets are random (256 bits), shown once, stored as a keyed hash
(``Keys.mac("oauth-client-secret", ...)``), like app passwords.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tau.auth import redirects
from tau.storage.database import Txn

MAC_LABEL = "oauth-client-secret"
MAX_REDIRECTS = 20


class ClientError(Exception):
    """A refused registration or an unknown client; ``code`` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    confidential: bool
    native: bool
    created_at: int

    @property
    def loopback_any_port(self) -> bool:
        """Never for a confidential client: its loopback would be anyone's loopback."""
        return self.native and not self.confidential

    def public(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "name": self.name, "redirect_uris": list(self.redirect_uris),
                "confidential": self.confidential, "native": self.native, "created_at": self.created_at}


@dataclass(frozen=True)
class Registration:
    """A validated request to register a client (before it has an id)."""

    name: str
    redirect_uris: tuple[str, ...]
    confidential: bool
    native: bool


def validate(name: str, redirect_uris: Sequence[str], confidential: bool = False,
             native: bool = False) -> Registration:
    """Refuse what the consent page would refuse anyway, so a registration never silently fails."""
    name = (name or "").strip()
    if not name or len(name) > 100 or any(not c.isprintable() for c in name):
        raise ClientError("invalid_client_metadata", "the name must be 1-100 printable characters")
    if confidential and native:
        raise ClientError("invalid_client_metadata", "a native app cannot keep a secret: "
                                                     "choose confidential or native, not both")
    uris: list[str] = []
    for uri in redirect_uris:
        try:
            redirects.parse(uri)
        except redirects.RedirectError as exc:
            raise ClientError("invalid_redirect_uri", f"{uri[:200]!r}: {exc}")
        if uri not in uris:
            uris.append(uri)
    if not uris and not native:
        raise ClientError("invalid_redirect_uri", "at least one redirect URI is required")
    if len(uris) > MAX_REDIRECTS:
        raise ClientError("invalid_redirect_uri", f"at most {MAX_REDIRECTS} redirect URIs")
    return Registration(name, tuple(uris), confidential, native)


def new_client_id() -> str:
    return "tau-" + secrets.token_urlsafe(12)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def secret_matches(stored_hash: str | None, presented_hash: str) -> bool:
    """Constant time; a public client (no stored hash) never matches."""
    return stored_hash is not None and hmac.compare_digest(stored_hash.encode(), presented_hash.encode())


_COLUMNS = "client_id, name, redirect_uris, secret_hash, native, created_at"


def _client(row: Sequence[Any]) -> Client:
    return Client(str(row[0]), str(row[1]), tuple(u for u in str(row[2]).split() if u), row[3] is not None,
                  bool(row[4]), int(row[5]))


def add_client(txn: Txn, client_id: str, reg: Registration, secret_hash: str | None) -> Client:
    if reg.confidential != (secret_hash is not None):
        raise ClientError("invalid_client_metadata", "a confidential client needs a secret, a public one none")
    if txn.query_one("SELECT 1 FROM oauth_clients WHERE client_id = ?", (client_id,)) is not None:
        raise ClientError("client_exists", f"client {client_id} already exists")
    txn.execute(f"INSERT INTO oauth_clients ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (client_id, reg.name, " ".join(reg.redirect_uris), secret_hash, int(reg.native), int(txn.now)))
    found = get_client(txn, client_id)
    assert found is not None
    return found


def get_client(txn: Txn, client_id: str) -> Client | None:
    row = txn.query_one(f"SELECT {_COLUMNS} FROM oauth_clients WHERE client_id = ?", (client_id,))
    return None if row is None else _client(row)


def get_secret_hash(txn: Txn, client_id: str) -> tuple[bool, str | None]:
    """(registered?, stored secret hash or None for a public client)."""
    row = txn.query_one("SELECT secret_hash FROM oauth_clients WHERE client_id = ?", (client_id,))
    return (False, None) if row is None else (True, row[0])


def refresh_owner(txn: Txn, token_hash: str) -> str | None:
    """The client a refresh token was issued to (None for an unknown token)."""
    row = txn.query_one("SELECT client_id FROM refresh_tokens WHERE token_hash = ?", (token_hash,))
    return None if row is None else str(row[0])


def list_clients(txn: Txn) -> list[Client]:
    return [_client(r) for r in txn.query(f"SELECT {_COLUMNS} FROM oauth_clients ORDER BY name, client_id")]


def remove_client(txn: Txn, client_id: str) -> None:
    """Remove a client and end what it was given: its refresh tokens and pending codes."""
    txn.execute("DELETE FROM oauth_clients WHERE client_id = ?", (client_id,))
    if txn.rowcount != 1:
        raise ClientError("client_not_found", f"no OAuth client {client_id}")
    txn.execute("UPDATE refresh_tokens SET revoked = 1 WHERE client_id = ?", (client_id,))
    txn.execute("DELETE FROM auth_codes WHERE client_id = ?", (client_id,))
