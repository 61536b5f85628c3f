"""OAuth2 persistence: refresh-token families and PKCE authorization codes.

Refresh tokens rotate: each use returns a new token in the same *family* and marks the old one
used. Presenting a used token again means it leaked (OAuth 2.0 Security BCP §4.14): the whole
family is revoked, so both the thief and the victim must log in again. Tokens and codes are
stored only as keyed hashes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tau.auth import revocation_store
from tau.auth.accounts import User, get_user_by_id
from tau.storage.database import Txn


class GrantError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Grant:
    user: User
    family: str
    scope: str
    client_id: str



def store_refresh_token(txn: Txn, user_id: int, family: str, token_hash: str, client_id: str, scope: str,
                        ttl: int) -> None:
    now = int(txn.now)
    txn.execute("INSERT INTO refresh_tokens (user_id, family, token_hash, client_id, scope, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (user_id, family, token_hash, client_id, scope, now, now + ttl))


def rotate_refresh_token(txn: Txn, token_hash: str, new_hash: str, ttl: int) -> Grant | GrantError:
    """Spend ``token_hash`` and store ``new_hash`` in its family; detects reuse.

    Refusals are *returned*, not raised, so a revocation made on the way commits.
    """
    row = txn.query_one("SELECT id, user_id, family, client_id, scope, expires_at, used_at, revoked"
                        " FROM refresh_tokens WHERE token_hash = ?", (token_hash,))
    if row is None:
        raise GrantError("invalid_grant", "unknown refresh token")
    token_id, user_id, family, client_id, scope, expires_at, used_at, revoked = row
    if revoked:
        raise GrantError("invalid_grant", "refresh token revoked")
    if used_at is not None:
        revoke_family(txn, family, int(user_id))
        return GrantError("invalid_grant", "refresh token reuse detected; the session has been revoked")
    if int(expires_at) <= int(txn.now):
        raise GrantError("invalid_grant", "refresh token expired")
    # spend it atomically: a concurrent use of the same token loses the race and counts as reuse
    txn.execute("UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL", (int(txn.now), token_id))
    if txn.rowcount != 1:
        revoke_family(txn, family, int(user_id))
        return GrantError("invalid_grant", "refresh token reuse detected; the session has been revoked")
    user = get_user_by_id(txn, int(user_id))
    if user is None or user.disabled:
        raise GrantError("invalid_grant", "account not available")
    store_refresh_token(txn, user.id, family, new_hash, client_id, scope, ttl)
    return Grant(user, family, scope, client_id)


def revoke_family(txn: Txn, family: str, user_id: int | None = None) -> None:
    """End a session: its refresh tokens, and its access tokens within seconds (tau.auth.revocation)."""
    revocation_store.revoke_families(txn, [family], user_id)


def revoke_by_token(txn: Txn, token_hash: str, user_id: int | None = None) -> bool:
    row = txn.query_one("SELECT family, user_id FROM refresh_tokens WHERE token_hash = ?", (token_hash,))
    if row is None or (user_id is not None and int(row[1]) != user_id):
        return False
    revoke_family(txn, row[0], int(row[1]))
    return True


def revoke_user_tokens(txn: Txn, user_id: int) -> None:
    revocation_store.revoke_user(txn, user_id)


def store_code(txn: Txn, code_hash: str, user_id: int, client_id: str, redirect_uri: str, challenge: str,
               scope: str, ttl: int = 60) -> None:
    txn.execute("INSERT INTO auth_codes (code_hash, user_id, client_id, redirect_uri, code_challenge, scope,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (code_hash, user_id, client_id, redirect_uri, challenge, scope, int(txn.now) + ttl))


@dataclass(frozen=True)
class CodeGrant:
    user: User
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str


def spend_code(txn: Txn, code_hash: str) -> CodeGrant | GrantError:
    """Use an authorization code once; a second use revokes what the first one issued (RFC 6749 §4.1.2)."""
    row = txn.query_one("SELECT user_id, client_id, redirect_uri, code_challenge, scope, expires_at, used"
                        " FROM auth_codes WHERE code_hash = ?", (code_hash,))
    if row is None:
        raise GrantError("invalid_grant", "unknown authorization code")
    user_id, client_id, redirect_uri, challenge, scope, expires_at, used = row
    if used:
        revoke_family(txn, code_family(code_hash), int(user_id))
        return GrantError("invalid_grant", "authorization code already used; tokens issued from it are revoked")
    if int(expires_at) <= int(txn.now):
        raise GrantError("invalid_grant", "authorization code expired")
    txn.execute("UPDATE auth_codes SET used = 1 WHERE code_hash = ? AND used = 0", (code_hash,))
    if txn.rowcount != 1:
        raise GrantError("invalid_grant", "authorization code already used")
    user = get_user_by_id(txn, int(user_id))
    if user is None or user.disabled:
        raise GrantError("invalid_grant", "account not available")
    return CodeGrant(user, client_id, redirect_uri, challenge, scope)


def code_family(code_hash: str) -> str:
    return "code:" + code_hash[:40]


def get_client_redirects(txn: Txn, client_id: str) -> list[str] | None:
    row = txn.query_one("SELECT redirect_uris FROM oauth_clients WHERE client_id = ?", (client_id,))
    return None if row is None else [u for u in row[0].split() if u]


def purge_expired(txn: Txn) -> None:
    now = int(txn.now)
    txn.execute("DELETE FROM auth_codes WHERE expires_at < ?", (now - 3600,))
    txn.execute("DELETE FROM refresh_tokens WHERE expires_at < ?", (now - 86400,))
