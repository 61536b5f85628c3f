"""One ``twisted.cred`` portal for every protocol (SMTP AUTH, IMAP LOGIN, DAV Basic, Bearer).

Checkers turn credentials into an avatar id (the user's address); the realm turns that into the
avatar each protocol asks for. Protocol services register their avatar factories with the realm
(``realm.register(IMailbox, factory)``) instead of the realm knowing every protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.cred import credentials, error
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from zope.interface import Attribute, Interface, implementer

from tau.auth import accounts
from tau.auth.accounts import User
from tau.auth.authenticator import Authenticator, LoginFailed, LoginThrottled
from tau.auth.tokens import InvalidToken, TokenService, still_valid_for
from tau.storage.database import Database


class IBearerToken(credentials.ICredentials):
    token = Attribute("the JWT access token")


@implementer(IBearerToken)
class BearerToken:
    def __init__(self, token: str) -> None:
        self.token = token


@implementer(credentials.IUsernamePassword)
class UsernamePasswordFrom(credentials.UsernamePassword):
    """Username/password plus the client's IP, which throttling needs."""

    def __init__(self, username: bytes | str, password: bytes | str, ip: str | None) -> None:
        if isinstance(username, bytes):
            username = username.decode("utf-8", "replace")
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        super().__init__(username, password)
        self.ip = ip


class IAccount(Interface):
    """The plain avatar: the authenticated TauID user."""


@implementer(ICredentialsChecker)
class PasswordChecker:
    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    def requestAvatarId(self, creds: Any) -> defer.Deferred:
        username = creds.username.decode("utf-8", "replace") if isinstance(creds.username, bytes) else creds.username
        password = creds.password.decode("utf-8", "replace") if isinstance(creds.password, bytes) else creds.password
        ip = getattr(creds, "ip", None)

        async def check() -> str:
            try:
                user = await self._auth.authenticate(username, password, ip)
            except LoginThrottled:
                raise error.UnauthorizedLogin("too many failed logins, try later")
            except LoginFailed:
                raise error.UnauthorizedLogin("invalid credentials")
            return user.address

        return defer.Deferred.fromCoroutine(check())


@implementer(ICredentialsChecker)
class BearerChecker:
    credentialInterfaces = (IBearerToken,)

    def __init__(self, tokens: TokenService, users: Any = None, revocations: Any = None) -> None:
        self._tokens = tokens
        #: a UserCache: without one, a token outlives a password change (the realm checks disabled)
        self._users = users
        #: RevokedSessions (tau.auth.revocation): a revoked session's tokens are refused at once
        self._revocations = revocations

    def requestAvatarId(self, creds: Any) -> defer.Deferred:
        try:
            claims = self._tokens.verify(creds.token)
        except InvalidToken:
            return defer.fail(error.UnauthorizedLogin("invalid token"))
        if self._users is None:
            return defer.succeed(claims["sub"])

        async def check() -> str:
            sid = claims.get("sid")
            if sid and self._revocations is not None and await self._revocations.is_revoked(sid):
                raise error.UnauthorizedLogin("session revoked")
            user = await self._users.get(claims["sub"])
            if not still_valid_for(claims, user):
                raise error.UnauthorizedLogin("token no longer valid")
            return user.address

        return defer.Deferred.fromCoroutine(check())


AvatarFactory = Callable[[User], Any]


@implementer(IRealm)
class TauRealm:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._factories: dict[Any, AvatarFactory] = {IAccount: lambda user: user}

    def register(self, interface: Any, factory: AvatarFactory) -> None:
        self._factories[interface] = factory

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> defer.Deferred:
        address = avatarId.decode() if isinstance(avatarId, bytes) else avatarId

        async def build() -> tuple[Any, Any, Callable[[], None]]:
            user = await self._db.run("realm_get_user", accounts.get_user, address, readonly=True)
            if user is None or user.disabled:
                raise error.UnauthorizedLogin("account not available")
            for iface in interfaces:
                factory = self._factories.get(iface)
                if factory is not None:
                    avatar = await defer.maybeDeferred(factory, user)
                    logout = getattr(avatar, "logout", None) or (lambda: None)
                    return iface, avatar, logout
            raise NotImplementedError(f"no avatar for {interfaces}")

        return defer.Deferred.fromCoroutine(build())


def make_portal(realm: TauRealm, authenticator: Authenticator, tokens: TokenService, users: Any = None,
                revocations: Any = None) -> Portal:
    return Portal(realm, [PasswordChecker(authenticator), BearerChecker(tokens, users, revocations)])
