"""The one login path: every protocol that takes a password (SMTP AUTH, IMAP LOGIN/AUTHENTICATE,
HTTP Basic for DAV and the API, the OAuth password grant, the consent page) calls
``registry.authenticator.authenticate`` — and nothing else — so throttling, the credential cache,
app passwords, the 2FA rule and LDAP apply the same everywhere. Bearer tokens (HTTP's alone) go
through the same object: ``authenticate_token`` checks the JWT, its revoked session and the cached
account, with no database round trip in the steady state.

Why not a ``twisted.cred`` Portal: one was built and every protocol bypassed it, because its
interface loses what protocols need — the throttle's ``retry_after`` (HTTP 429 Retry-After, SMTP
454, IMAP UNAVAILABLE) collapses into ``UnauthorizedLogin``, the password grant's "I ask for the
TOTP code myself" has no credential interface, every protocol wants the same ``User`` (no
per-protocol avatars were ever registered), and its realm re-read the user from the database on
every login, a round trip per DAV request that this cache exists to avoid.

LDAP is a checker the authenticator is built with (``directory``, see ``tau.auth.ldap``), not a
patch applied later: the registry passes it in when ``[ldap] url`` is set.

argon2id costs ~80–110 ms and DAV/IMAP clients send credentials constantly, so a successful
check is cached for a short TTL under a keyed hash of (address, stored hash, password): the
cache never holds a password, and a password change or a disabled account misses it.
App passwords are high-entropy random strings, so a keyed HMAC (not argon2) is enough to store
and look them up in one query; they are checked first and never cached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.defer import Deferred

from tau.auth import accounts, passwords
from tau.auth.accounts import User
from tau.auth.revocation import RevokedSessions
from tau.auth.throttle import LoginThrottle
from tau.auth.tokens import InvalidToken, TokenService, still_valid_for
from tau.auth.usercache import UserCache
from tau.keys import Keys
from tau.storage.database import Database

CACHE_MAX = 50_000


class LoginFailed(Exception):
    """Wrong address or password (deliberately not saying which)."""


class TokenRefused(LoginFailed):
    """A bearer token that is invalid or expired, whose session was revoked, or that no longer
    speaks for its account (disabled, password changed); the message says which."""


class LoginThrottled(LoginFailed):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; retry in {int(retry_after) + 1} s")
        self.retry_after = retry_after


class Directory(Protocol):
    """A second password checker (``tau.auth.ldap.LdapDirectory``): it verifies ``password`` for
    ``address`` and returns the local user it provisioned or refreshed, or None."""

    url: str
    #: the last directory problem, or None (/api/health, the admin dashboard)
    last_error: str | None

    async def login(self, db: Database, address: str, password: str, user: User | None) -> User | None: ...

    def check(self) -> Deferred[None]:
        """For /api/health: fires when the directory answers, fails when it is down."""


class Authenticator:
    def __init__(self, db: Database, keys: Keys, throttle: LoginThrottle, clock: Any,
                 run_in_thread: Callable[..., defer.Deferred[Any]], cache_ttl: int,
                 directory: Directory | None = None, tokens: TokenService | None = None,
                 users: UserCache | None = None,
                 revocations: Callable[[], RevokedSessions] | None = None) -> None:
        self._db = db
        self._keys = keys
        self._throttle = throttle
        self._clock = clock
        self._run_in_thread = run_in_thread
        self._cache_ttl = cache_ttl
        self._cache: dict[str, float] = {}
        self._directory = directory
        self._tokens, self._users = tokens, users
        #: a getter: the revoked-session set subscribes to the bus, so it is built on first bearer use
        self._revocations = revocations

    @property
    def directory(self) -> Directory | None:
        """The directory checker (LDAP) this login path was built with, or None."""
        return self._directory

    def _cache_key(self, user: User, password: str) -> str:
        # the stored hash (fresh salt on every change), not the change time: a change within the
        # same second as the cached login must still miss
        return self._keys.mac("credential-cache", f"{user.address}\0{user.password_hash}\0{password}")

    async def authenticate(self, address: str, password: str, ip: str | None = None,
                           second_factor: bool = False) -> User:
        """The user for these credentials, or LoginFailed / LoginThrottled.

        ``second_factor``: the caller asks for a TOTP code itself (token endpoint, consent page), so
        the account password is acceptable for a 2FA user; protocol logins need an app password.
        """
        account = address.strip().lower() if isinstance(address, str) else ""
        wait = self._throttle.retry_after(account, ip)
        if wait > 0:
            self._throttle.refused(account, ip, wait)
            raise LoginThrottled(wait)
        user = await self._check(account, password, second_factor)
        if user is None:
            self._throttle.failure(account, ip)
            raise LoginFailed("invalid credentials")
        self._throttle.success(account, ip)
        return user

    async def authenticate_token(self, token: str) -> tuple[User, dict[str, Any]]:
        """The account a bearer token speaks for and its claims, or TokenRefused."""
        if self._tokens is None or self._users is None or self._revocations is None:
            raise TokenRefused("bearer tokens are not accepted here")
        try:
            claims = self._tokens.verify(token)
        except InvalidToken:
            raise TokenRefused("invalid or expired token") from None
        sid = claims.get("sid")
        if sid and await self._revocations().is_revoked(str(sid)):
            raise TokenRefused("this session was revoked")
        user = await self._users.get(claims["sub"])
        if user is None or not still_valid_for(claims, user):
            raise TokenRefused("token no longer valid")
        return user, claims

    async def _primary(self, user: User | None, second_factor: bool) -> User | None:
        """The account password was right: refuse it alone for 2FA users (tau.auth.totp)."""
        from tau.auth.totp import is_enabled

        if user is None or second_factor:
            return user
        return None if await self._db.run("auth_2fa", is_enabled, user.id, readonly=True) else user

    async def _check(self, account: str, password: str, second_factor: bool = False) -> User | None:
        if not account or not isinstance(password, str) or not password or len(password) > passwords.MAX_LENGTH:
            return None
        user = await self._db.run("auth_get_user", accounts.get_user, account, readonly=True)
        if user is None and self._directory is not None:  # LDAP: provisioned on first login
            return await self._primary(await self._directory.login(self._db, account, password, None), second_factor)
        if user is None:
            # same cost as a real check: no timing oracle for which addresses exist
            await self._run_in_thread(passwords.verify_password, None, password)
            return None
        if user.disabled:
            return None
        now = self._clock.seconds()
        key = self._cache_key(user, password)
        expiry = self._cache.get(key)
        if expiry is not None and expiry > now:
            return await self._primary(user, second_factor)
        # app passwords first: one indexed query instead of argon2id, and never cached, so a
        # revoked app password stops working at once (even when revoked by the CLI)
        app_hash = self._keys.mac("app-password", password)
        app_user = await self._db.run("auth_app_password", accounts.find_app_password, user.address, app_hash)
        if app_user is not None:
            return app_user
        if user.source == "ldap" and self._directory is not None:
            return await self._primary(await self._directory.login(self._db, account, password, user), second_factor)
        if user.password_hash and await self._run_in_thread(passwords.verify_password, user.password_hash, password):
            self._remember(key, now)
            return await self._primary(user, second_factor)
        return None

    def _remember(self, key: str, now: float) -> None:
        if self._cache_ttl <= 0:
            return
        if len(self._cache) >= CACHE_MAX:
            for k in [k for k, exp in self._cache.items() if exp <= now] or list(self._cache)[: CACHE_MAX // 10]:
                self._cache.pop(k, None)
        self._cache[key] = now + self._cache_ttl

    def forget(self) -> None:
        """Drop every cached verification (password change, account disabled)."""
        self._cache.clear()

