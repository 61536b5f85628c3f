"""LDAP directory logins (``[ldap] url``): bind as the user, map attributes, provision on first login.

The authenticator is built with this backend (``from_config``, called by the registry builder)
and consults it for addresses that are unknown locally or whose account row says
``source = 'ldap'``; local accounts never touch the directory, so they keep working when it is
down. ldap3 is blocking, so every directory round trip runs in a thread.

Flow per login (cache miss): bind with the service account (or anonymously), search
``base_dn`` with ``user_filter`` for the user's DN and attributes (mail, displayName, memberOf),
bind as that DN with the presented password, then decide admin from ``admin_group`` (memberOf
or a ``groupOfNames`` whose ``member`` lists the DN). Successes are cached for ``cache_ttl``
under a keyed hash (never the password), which also lets logins ride out a short outage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from tau.auth import accounts
from tau.auth.accounts import AccountError, User
from tau.storage.database import Database

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
CACHE_MAX = 10_000


class DirectoryUnavailable(Exception):
    """The directory could not be reached or answered with an unexpected error."""


@dataclass(frozen=True)
class DirectoryEntry:
    dn: str
    mail: str
    display_name: str
    is_admin: bool


def _escape(value: str) -> str:
    """RFC 4515 §3 filter escaping: a login name must never change the filter's shape."""
    from ldap3.utils.conv import escape_filter_chars

    return str(escape_filter_chars(value))


def _first(entry: Any, name: str) -> str:
    values = entry.get(name) or []
    if isinstance(values, (str, bytes)):
        values = [values]
    for v in values:
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return ""


class LdapDirectory:
    """Bind-based verification against one directory; see the module doc for the flow."""

    def __init__(self, settings: dict[str, Any], run_in_thread: Callable[..., defer.Deferred[Any]], clock: Any,
                 mac: Callable[[str, str], str]) -> None:
        self.url = settings["url"]
        self.bind_dn = settings.get("bind_dn", "")
        self.bind_password = settings.get("bind_password", "")
        self.base_dn = settings.get("base_dn", "")
        self.user_filter = settings.get("user_filter") or "(mail={user})"
        self.admin_group = (settings.get("admin_group") or "").strip().lower()
        self.cache_ttl = int(settings.get("cache_ttl", 60))
        self.timeout = int(settings.get("timeout", 5))
        self._run_in_thread = run_in_thread
        self._clock = clock
        self._mac = mac
        self._cache: dict[str, tuple[float, DirectoryEntry]] = {}
        #: the last directory problem, or None; shown by /api/health and the admin dashboard
        self.last_error: str | None = None

    # -- blocking part (thread) ---------------------------------------------------------------
    def _connection(self, user: str | None, password: str | None) -> Any:
        import ldap3

        server = ldap3.Server(self.url, connect_timeout=self.timeout, get_info=ldap3.NONE)
        return ldap3.Connection(server, user=user, password=password, receive_timeout=self.timeout,
                                raise_exceptions=False, auto_bind=ldap3.AUTO_BIND_NONE)

    def _service_bind(self) -> Any:
        from ldap3.core.exceptions import LDAPException

        conn = self._connection(self.bind_dn or None, self.bind_password or None)
        try:
            ok = conn.bind()
        except LDAPException as exc:
            raise DirectoryUnavailable(f"cannot reach {self.url}: {exc}") from exc
        if not ok:
            raise DirectoryUnavailable(f"service bind as {self.bind_dn or 'anonymous'} refused: "
                                       f"{conn.result.get('description')}")
        return conn

    def lookup_sync(self, address: str) -> DirectoryEntry | None:
        """The directory entry for a login address (service bind + search), or None."""
        from ldap3 import SUBTREE
        from ldap3.core.exceptions import LDAPException

        conn = self._service_bind()
        try:
            search = self.user_filter.replace("{user}", _escape(address))
            if not conn.search(self.base_dn, search, SUBTREE, attributes=["mail", "displayName", "cn", "memberOf"],
                               size_limit=2):
                if conn.result.get("result") not in (0, 32):  # 32: noSuchObject
                    raise DirectoryUnavailable(f"search failed: {conn.result.get('description')}")
                return None
            if len(conn.response or []) != 1:
                return None
            hit = [r for r in conn.response if r.get("type") == "searchResEntry"][0]
            attrs = hit.get("attributes") or {}
            dn = hit["dn"]
            groups = [g.lower() for g in (attrs.get("memberOf") or [])]
            admin = bool(self.admin_group) and self.admin_group in groups
            if self.admin_group and not admin:
                admin = conn.search(self.admin_group, f"(member={_escape(dn)})", "BASE", attributes=["cn"]) \
                    and bool(conn.response)
            mail = _first(attrs, "mail") or address
            name = _first(attrs, "displayName") or _first(attrs, "cn")
            return DirectoryEntry(dn, mail, name, bool(admin))
        except LDAPException as exc:
            raise DirectoryUnavailable(str(exc)) from exc
        finally:
            conn.unbind()

    def verify_sync(self, address: str, password: str) -> DirectoryEntry | None:
        """Look the user up, then bind as them: None for a wrong password or unknown user."""
        from ldap3.core.exceptions import LDAPException

        entry = self.lookup_sync(address)
        if entry is None:
            return None
        conn = self._connection(entry.dn, password)
        try:
            ok = conn.bind()
        except LDAPException as exc:
            raise DirectoryUnavailable(str(exc)) from exc
        finally:
            conn.unbind()
        return entry if ok else None

    # -- reactor part ------------------------------------------------------------------------
    async def verify(self, address: str, password: str) -> DirectoryEntry | None:
        """Cached bind check; raises DirectoryUnavailable (logged) when the directory is down."""
        now = self._clock.seconds()
        key = self._mac("ldap-cache", f"{address}\0{password}")
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            entry: DirectoryEntry | None = await self._run_in_thread(self.verify_sync, address, password)
        except DirectoryUnavailable as exc:
            self.last_error = str(exc)
            log.error("ldap_unavailable url={url} error={error}; directory users cannot log in "
                      "(local accounts are unaffected)", url=self.url, error=str(exc))
            raise
        self.last_error = None
        if entry is not None and self.cache_ttl > 0:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = (now + self.cache_ttl, entry)
        return entry

    async def login(self, db: Database, address: str, password: str, user: User | None) -> User | None:
        """The local row for a directory login, provisioned or refreshed; None if refused."""
        try:
            entry = await self.verify(address, password)
        except DirectoryUnavailable:
            return None
        if entry is None:
            return None
        try:
            provisioned: User | None = await db.run("ldap_provision", provision, address, entry)
            return provisioned
        except AccountError as exc:
            log.warn("ldap user {address} not provisioned: {why}", address=address, why=exc.message)
            return None

    def check(self) -> defer.Deferred[None]:
        """For /api/health: a service bind (raises when the directory is down)."""
        return self._run_in_thread(lambda: self._service_bind().unbind())


def provision(txn: Any, address: str, entry: DirectoryEntry) -> User | None:
    """Create the ``source='ldap'`` user on first login; keep name and admin role in step after."""
    user = accounts.get_user(txn, address)
    if user is None:
        return accounts.add_user(txn, address, None, display_name=entry.display_name, is_admin=entry.is_admin,
                                 source="ldap")
    if user.source != "ldap" or user.disabled:
        return None
    if (user.display_name, user.is_admin) != (entry.display_name, entry.is_admin):
        accounts.set_profile(txn, user.id, display_name=entry.display_name, is_admin=entry.is_admin)
        user = accounts.get_user(txn, address)
    return user


def from_config(settings: Any, run_in_thread: Callable[..., defer.Deferred[Any]], clock: Any,
                mac: Callable[[str, str], str]) -> LdapDirectory | None:
    """The directory the authenticator is built with when ``[ldap] url`` is set (tau.registry)."""
    if not settings.get("url"):
        return None
    return LdapDirectory(settings, run_in_thread, clock, mac)


def install(registry: Registry, host: Any) -> None:
    """Plugin hook: the directory is already part of the login path; report its health."""
    directory = registry.authenticator.directory
    if directory is None:
        return
    registry.health_checks["ldap"] = directory.check
    registry.services["ldap"] = "ok"
