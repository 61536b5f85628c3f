"""TauID accounts: domains, users, aliases and app passwords.

Plain transaction functions ``fn(txn, ...)``: the daemon runs them through the adbapi pool, the
CLI through one blocking connection, so both share every rule here (normalisation, conflicts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tau.auth import revocation_store
from tau.storage.database import Txn

_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")


class AccountError(Exception):
    """A refused account operation; ``code`` is the snake_case error for APIs and exit codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class User:
    id: int
    address: str
    password_hash: str | None
    display_name: str
    disabled: bool
    is_admin: bool
    quota_bytes: int | None
    source: str
    created_at: int
    password_changed_at: int

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]

    def public(self) -> dict[str, object]:
        return {"id": self.id, "address": self.address, "display_name": self.display_name,
                "disabled": self.disabled, "admin": self.is_admin, "quota_bytes": self.quota_bytes,
                "source": self.source, "created_at": self.created_at}


_USER_COLUMNS = ("id, address, password_hash, display_name, disabled, is_admin, quota_bytes, source,"
                 " created_at, password_changed_at")


def _user(row: tuple[Any, ...] | None) -> User | None:
    if row is None:
        return None
    return User(int(row[0]), row[1], row[2], row[3], bool(row[4]), bool(row[5]),
                None if row[6] is None else int(row[6]), row[7], int(row[8]), int(row[9]))


def normalize_domain(name: str) -> str:
    domain = name.strip().lower().rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise AccountError("invalid_domain", f"not a valid domain name: {name!r}")
    if not _DOMAIN.match(domain):
        raise AccountError("invalid_domain", f"not a valid domain name: {name!r}")
    return domain


def normalize_address(address: str) -> str:
    """Lower-case ``local@domain``; refuses anything a mail client could not type."""
    if not isinstance(address, str) or address.count("@") != 1 or len(address) > 254:
        raise AccountError("invalid_address", f"not a valid address: {address!r}")
    local, domain = address.strip().rsplit("@", 1)
    local = local.lower()
    if not local or len(local) > 64 or not _LOCAL.match(local):
        raise AccountError("invalid_address", f"not a valid address: {address!r}")
    return f"{local}@{normalize_domain(domain)}"



# -- domains -----------------------------------------------------------------------------------

def add_domain(txn: Txn, name: str) -> str:
    domain = normalize_domain(name)
    if txn.scalar("SELECT id FROM domains WHERE name = ?", (domain,)) is not None:
        raise AccountError("domain_exists", f"domain {domain} exists already")
    txn.execute("INSERT INTO domains (name, created_at) VALUES (?, ?)", (domain, int(txn.now)))
    return domain


def ensure_domain(txn: Txn, name: str) -> str:
    domain = normalize_domain(name)
    if txn.scalar("SELECT id FROM domains WHERE name = ?", (domain,)) is None:
        txn.execute("INSERT INTO domains (name, created_at) VALUES (?, ?)", (domain, int(txn.now)))
    return domain


def list_domains(txn: Txn) -> list[dict[str, object]]:
    rows = txn.query("SELECT d.name, d.created_at, (SELECT COUNT(*) FROM users u WHERE u.domain_id = d.id)"
                     " FROM domains d ORDER BY d.name")
    return [{"name": r[0], "created_at": int(r[1]), "users": int(r[2])} for r in rows]


def delete_domain(txn: Txn, name: str) -> None:
    domain = normalize_domain(name)
    domain_id = txn.scalar("SELECT id FROM domains WHERE name = ?", (domain,))
    if domain_id is None:
        raise AccountError("domain_not_found", f"no domain {domain}")
    users = txn.scalar("SELECT COUNT(*) FROM users WHERE domain_id = ?", (domain_id,))
    if users:
        raise AccountError("domain_in_use", f"domain {domain} still has {users} user(s); delete them first")
    txn.execute("DELETE FROM domains WHERE id = ?", (domain_id,))


def is_local_domain(txn: Txn, name: str) -> bool:
    return txn.scalar("SELECT 1 FROM domains WHERE name = ?", (name.lower(),)) is not None


def _domain_id(txn: Txn, address: str) -> int:
    domain = address.rsplit("@", 1)[1]
    domain_id = txn.scalar("SELECT id FROM domains WHERE name = ?", (domain,))
    if domain_id is None:
        raise AccountError("domain_not_found", f"domain {domain} is not served here (tau domain add {domain})")
    return int(domain_id)


# -- users -------------------------------------------------------------------------------------

def add_user(txn: Txn, address: str, password_hash: str | None, display_name: str = "",
             is_admin: bool = False, quota_bytes: int | None = None, source: str = "local") -> User:
    address = normalize_address(address)
    domain_id = _domain_id(txn, address)
    if txn.scalar("SELECT id FROM users WHERE address = ?", (address,)) is not None:
        raise AccountError("user_exists", f"user {address} exists already")
    now = int(txn.now)
    txn.execute(
        "INSERT INTO users (address, domain_id, password_hash, display_name, is_admin, quota_bytes, source,"
        " created_at, password_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (address, domain_id, password_hash, display_name, int(is_admin), quota_bytes, source, now, now))
    user = get_user(txn, address)
    assert user is not None
    return user


def get_user(txn: Txn, address: str) -> User | None:
    try:
        address = normalize_address(address)
    except AccountError:
        return None
    return _user(txn.query_one(f"SELECT {_USER_COLUMNS} FROM users WHERE address = ?", (address,)))


def get_user_by_id(txn: Txn, user_id: int) -> User | None:
    return _user(txn.query_one(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,)))


def require_user(txn: Txn, address: str) -> User:
    user = get_user(txn, address)
    if user is None:
        raise AccountError("user_not_found", f"no user {address}")
    return user


def list_users(txn: Txn, domain: str | None = None) -> list[User]:
    if domain:
        rows = txn.query(f"SELECT {_USER_COLUMNS} FROM users WHERE address LIKE ? ORDER BY address",
                         ("%@" + normalize_domain(domain),))
    else:
        rows = txn.query(f"SELECT {_USER_COLUMNS} FROM users ORDER BY address")
    return [u for u in map(_user, rows) if u is not None]


def set_password(txn: Txn, address: str, password_hash: str) -> None:
    user = require_user(txn, address)
    txn.execute("UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
                (password_hash, int(txn.now), user.id))
    # a new password ends every session: refresh tokens here, access tokens by their iat and,
    # within seconds on every node, by their revoked session (tau.auth.revocation)
    revocation_store.revoke_user(txn, user.id)


def set_initial_password(txn: Txn, user_id: int, password_hash: str) -> bool:
    """Give an invited account (no password yet) its first password; False when it has one
    already, so of two uses of one invite link only the first sets anything."""
    txn.execute("UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ? AND password_hash IS NULL"
                " AND disabled = 0", (password_hash, int(txn.now), user_id))
    return txn.rowcount == 1


def set_disabled(txn: Txn, address: str, disabled: bool) -> None:
    user = require_user(txn, address)
    txn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user.id))
    if disabled:
        revocation_store.revoke_user(txn, user.id)


def set_profile(txn: Txn, user_id: int, *, is_admin: bool | None = None, display_name: str | None = None,
                quota_bytes: int | None | object = ...) -> None:
    """Change the admin role, display name or quota (``None``: the default) of a user; an
    argument left out stays as it is."""
    if is_admin is not None:
        txn.execute("UPDATE users SET is_admin = ? WHERE id = ?", (int(is_admin), user_id))
    if quota_bytes is not ...:
        txn.execute("UPDATE users SET quota_bytes = ? WHERE id = ?", (quota_bytes, user_id))
    if display_name is not None:
        txn.execute("UPDATE users SET display_name = ? WHERE id = ?", (display_name, user_id))


def enabled_user_ids(txn: Txn, addresses: list[str]) -> dict[str, int]:
    """Enabled local users among ``addresses`` (normalised ones: others match nothing), address → id."""
    out: dict[str, int] = {}
    for address in addresses:
        user = get_user(txn, address)
        if user is not None and user.address == address and not user.disabled:
            out[address] = user.id
    return out


def existing_addresses(txn: Txn, addresses: list[str]) -> set[str]:
    """Those of ``addresses`` (normalised ones: others match nothing) that are accounts here."""
    users = (get_user(txn, address) for address in addresses)
    return {user.address for user in users if user is not None} & set(addresses)


def delete_user(txn: Txn, address: str) -> User:
    user = require_user(txn, address)
    revocation_store.revoke_user(txn, user.id)  # before the cascade takes its refresh tokens
    txn.execute("DELETE FROM aliases WHERE destination = ?", (user.address,))
    txn.execute("DELETE FROM users WHERE id = ?", (user.id,))
    return user


# -- aliases -----------------------------------------------------------------------------------

def add_alias(txn: Txn, address: str, destination: str) -> None:
    """``address`` (or ``@domain`` for a catch-all) delivers to ``destination``."""
    if address.startswith("@"):
        source = "@" + normalize_domain(address[1:])
        domain_id = _domain_id(txn, "x" + source)
    else:
        source = normalize_address(address)
        domain_id = _domain_id(txn, source)
    target = normalize_address(destination)
    if is_local_domain(txn, target.rsplit("@", 1)[1]) and get_user(txn, target) is None:
        raise AccountError("user_not_found", f"alias destination {target} is not a user here")
    if txn.scalar("SELECT 1 FROM aliases WHERE address = ? AND destination = ?", (source, target)):
        raise AccountError("alias_exists", f"alias {source} -> {target} exists already")
    txn.execute("INSERT INTO aliases (address, domain_id, destination, created_at) VALUES (?, ?, ?, ?)",
                (source, domain_id, target, int(txn.now)))


def list_aliases(txn: Txn, domain: str | None = None) -> list[dict[str, str]]:
    if domain:
        d = normalize_domain(domain)
        rows = txn.query("SELECT a.address, a.destination FROM aliases a JOIN domains d ON d.id = a.domain_id"
                         " WHERE d.name = ? ORDER BY a.address, a.destination", (d,))
    else:
        rows = txn.query("SELECT address, destination FROM aliases ORDER BY address, destination")
    return [{"address": r[0], "destination": r[1]} for r in rows]


def delete_alias(txn: Txn, address: str, destination: str | None = None) -> int:
    source = "@" + normalize_domain(address[1:]) if address.startswith("@") else normalize_address(address)
    if destination:
        txn.execute("DELETE FROM aliases WHERE address = ? AND destination = ?",
                    (source, normalize_address(destination)))
    else:
        txn.execute("DELETE FROM aliases WHERE address = ?", (source,))
    if txn.rowcount == 0:
        raise AccountError("alias_not_found", f"no alias {source}")
    return txn.rowcount


def resolve_recipient(txn: Txn, address: str) -> list[str]:
    """Where mail for ``address`` goes: the user, else its aliases, else the domain's catch-all.

    Returns [] for an unknown local recipient (SMTP 550 5.1.1).
    """
    try:
        address = normalize_address(address)
    except AccountError:
        return []
    row = txn.query_one("SELECT address FROM users WHERE address = ? AND disabled = 0", (address,))
    targets = [r[0] for r in txn.query("SELECT destination FROM aliases WHERE address = ?", (address,))]
    if row:
        return [row[0]] + [t for t in targets if t != row[0]]
    if targets:
        return targets
    catch_all = "@" + address.rsplit("@", 1)[1]
    return [r[0] for r in txn.query("SELECT destination FROM aliases WHERE address = ?", (catch_all,))]


def user_may_send_as(txn: Txn, user: User, sender: str) -> bool:
    """The user's own address, an alias that delivers to them, or an address they were granted
    (``tau user send-as``, tau.auth.sendas): the envelope sender, header From and Sender on
    submission (553 otherwise) and the identity iMIP from local mail is applied as."""
    try:
        sender = normalize_address(sender)
    except AccountError:
        return False
    if sender == user.address:
        return True
    return txn.scalar("SELECT 1 FROM aliases WHERE address = ? AND destination = ?"
                      " UNION ALL SELECT 1 FROM send_as WHERE user_id = ? AND address = ?",
                      (sender, user.address, user.id, sender)) is not None


# -- app passwords -----------------------------------------------------------------------------

def add_app_password(txn: Txn, address: str, name: str, token_hash: str) -> int:
    user = require_user(txn, address)
    if not name or len(name) > 100:
        raise AccountError("invalid_name", "app password name must be 1-100 characters")
    row = txn.query_one("INSERT INTO app_passwords (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?)"
                        " RETURNING id", (user.id, name, token_hash, int(txn.now)))
    assert row is not None
    return int(row[0])


def list_app_passwords(txn: Txn, address: str) -> list[dict[str, object]]:
    user = require_user(txn, address)
    rows = txn.query("SELECT id, name, created_at, last_used_at FROM app_passwords WHERE user_id = ? ORDER BY id",
                     (user.id,))
    return [{"id": int(r[0]), "name": r[1], "created_at": int(r[2]),
             "last_used_at": None if r[3] is None else int(r[3])} for r in rows]


def revoke_app_password(txn: Txn, address: str, app_id: int) -> None:
    user = require_user(txn, address)
    txn.execute("DELETE FROM app_passwords WHERE id = ? AND user_id = ?", (app_id, user.id))
    if txn.rowcount == 0:
        raise AccountError("app_password_not_found", f"{address} has no app password {app_id}")


def find_app_password(txn: Txn, address: str, token_hash: str) -> User | None:
    """The user if ``token_hash`` is one of *their* app passwords (and mark it used)."""
    user = get_user(txn, address)
    if user is None:
        return None
    app_id = txn.scalar("SELECT id FROM app_passwords WHERE user_id = ? AND token_hash = ?", (user.id, token_hash))
    if app_id is None:
        return None
    txn.execute("UPDATE app_passwords SET last_used_at = ? WHERE id = ?", (int(txn.now), app_id))
    return user
