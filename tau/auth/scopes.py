"""OAuth scopes: what a token may reach, one place for their names, words and defaults.

Every authenticated route declares the scope it needs next to itself (``http.route(...,
scope="mail")``); the router refuses a token without it (403 ``insufficient_scope``, RFC 6750
§3.1). ``admin`` needs the admin role as well as the scope. Defaults for logins that name no
scope:

- Basic auth (DAV clients with a password or app password): every user scope, never ``admin``;
- the password grant without ``scope=``: every user scope, plus ``admin`` for an administrator
  (the ``/admin`` page signs in this way);
- a token with an empty ``scope`` claim (minted before scopes were enforced) counts as the
  password-grant default only when its session shows it came from that grant; an empty-scope
  token from the authorization-code grant, or one with no session, reaches only ``ANY`` routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: scope name → the sentence the consent page shows
DESCRIPTIONS: dict[str, str] = {
    "openid": "Confirm who you are (your tau address).",
    "profile": "See your name and profile.",
    "email": "See your email address.",
    "mail": "Read, send, move and delete your email, and manage your mail encryption keys.",
    "calendar": "See and change your calendars and events, and invite people on your behalf.",
    "contacts": "See and change your address books and contacts.",
    "files": "See, upload, change, delete and share your files.",
    "chat": "Read and send your chat messages and manage your chat devices.",
    "calls": "Start, answer and manage your audio and video calls.",
    "account": "Change your account security settings, such as two-factor sign-in.",
    "admin": "Administer this server: users, domains, aliases, quotas and the mail queue"
             " (only if you are an administrator).",
}
#: scopes of identity only (OpenID Connect); they open no data route beyond ``ANY`` ones
IDENTITY = ("openid", "profile", "email")
#: everything a user owns; the default of Basic auth and (with ``admin`` for admins) the password grant
USER = ("mail", "calendar", "contacts", "files", "chat", "calls", "account")
ADMIN = "admin"
#: older names still accepted in requests and in already-issued tokens
ALIASES = {"messages": "chat"}
#: a route every valid token may use, whatever its scope (``/api/me``: it says who the token is for)
ANY = "*"
#: the scope string of a full user session (tests and the password-grant default)
FULL = " ".join(IDENTITY + USER)


class ScopeRefused(Exception):
    """The token lacks ``scope`` (or, for ``admin``, its user lacks the role)."""

    def __init__(self, scope: str, message: str, role: bool = False) -> None:
        super().__init__(message)
        self.scope, self.message, self.role = scope, message, role


def parse(text: str | Iterable[str]) -> tuple[str, ...]:
    """Known scopes in ``text`` (aliases mapped to their names), in order, each once."""
    words = text.split() if isinstance(text, str) else list(text)
    out: list[str] = []
    for word in words:
        name = ALIASES.get(word, word)
        if name in DESCRIPTIONS and name not in out:
            out.append(name)
    return tuple(out)


def password_default(user: Any) -> tuple[str, ...]:
    """What the password grant gives when no scope is asked for."""
    return IDENTITY + USER + ((ADMIN,) if getattr(user, "is_admin", False) else ())


def basic_default() -> frozenset[str]:
    """What a Basic (password / app password) login may reach: everything but ``admin``."""
    return frozenset(IDENTITY + USER)


def grantable(user: Any, requested: str) -> tuple[str, ...]:
    """The scopes a login asking for ``requested`` gets: known ones, ``admin`` only for admins."""
    allowed = set(password_default(user))
    return tuple(s for s in parse(requested) if s in allowed)


def from_password_grant(session: str | None) -> bool:
    """Sessions of the authorization-code grant are named ``code:...``; password-grant ones are
    random hex (their refresh tokens keep the name)."""
    return bool(session) and not str(session).startswith("code:")


def of_token(claims: dict[str, Any], user: Any) -> frozenset[str]:
    """The scopes a verified token carries (see the module docstring for empty claims)."""
    text = claims.get("scope") or ""
    if isinstance(text, str) and text.strip():
        return frozenset(parse(text))
    if from_password_grant(claims.get("sid")):
        return frozenset(password_default(user))
    return frozenset()


def valid_requirement(scope: str) -> bool:
    """A route's ``scope=``: ``ANY``, or one or more scope names (all of them needed)."""
    return scope == ANY or (bool(scope.split()) and all(s in DESCRIPTIONS for s in scope.split()))


def require(granted: frozenset[str], scope: str | None, user: Any) -> None:
    """Raise ScopeRefused unless ``granted`` (and the user's role, for admin) allow ``scope``
    (space-separated names: every one is needed, as in RFC 6750's ``scope`` attribute)."""
    if scope is None or scope == ANY:
        return
    needed = scope.split()
    # the role first: no token can give a non-administrator ``admin``, so "get a token with more
    # scope" would be the wrong advice
    if ADMIN in needed and not getattr(user, "is_admin", False):
        raise ScopeRefused(scope, "administrators only", role=True)
    missing = [s for s in needed if s not in granted]
    if missing:
        raise ScopeRefused(scope, f"this token does not carry the scope this needs: {' '.join(missing)}")


def describe(text: str) -> list[tuple[str, str]]:
    """(name, sentence) for each known scope in ``text``, for the consent page."""
    return [(name, DESCRIPTIONS[name]) for name in parse(text)]
