"""The root HTTP resource: small routes registered per module (Synapse's ``register_servlets``).

A route is (method, path pattern, async handler, auth mode, scope). The router answers 404/405
in JSON, applies the per-IP and per-user rate limits, authenticates (Bearer for the API; Bearer or
Basic where DAV clients need it), refuses a caller without the route's scope (tau.auth.scopes:
403 ``insufficient_scope``), and turns ``HttpError`` into the contract's error body.
Subtrees that are ordinary twisted.web resources (DAV) are mounted by prefix.

Every authenticated route and mount names its scope where it is registered; one that does not
is a programming error, refused at registration rather than left open to every token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

from tau.auth import scopes
from tau.auth.hashgate import HashBusy
from tau.http.auth import authenticate_request, require_scope
from tau.http.errors import HttpError, error_body
from tau.storage.budget import StatementTimeout, act_as

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
Handler = Callable[..., Awaitable[Any]]
_PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass
class Response:
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] | None = None


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(obj, ensure_ascii=False).encode(), status, "application/json", headers)


@dataclass
class Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    auth: str  # "none" | "bearer" | "any" (Bearer or Basic)
    scope: str | None = None  # tau.auth.scopes name, or scopes.ANY; None only with auth="none"


def _checked_scope(what: str, auth: str, scope: str | None) -> str | None:
    if auth == "none":
        return None
    if scope is None or not scopes.valid_requirement(scope):
        raise ValueError(f"{what}: an authenticated route needs scope= (one of {sorted(scopes.DESCRIPTIONS)}"
                         f" or scopes.ANY), got {scope!r}")
    return scope


class Router(Resource):
    isLeaf = True

    def __init__(self, registry: Registry) -> None:
        super().__init__()
        self.registry = registry
        self.routes: list[Route] = []
        self.mounts: list[tuple[str, IResource, str, str | None]] = []
        #: route patterns (prefixes) that also accept the browser session cookie (tau.http.cookie_session)
        self.cookie_prefixes: list[str] = []

    def route(self, method: str, pattern: str, handler: Handler, auth: str = "bearer",
              scope: str | None = None) -> None:
        """``pattern`` like ``/api/emails/{id}``; parameters match one path segment. ``scope``: what
        the caller's token must carry (tau.auth.scopes); required unless ``auth="none"``."""
        scope = _checked_scope(f"{method} {pattern}", auth, scope)
        regex = re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", re.escape(pattern).replace(r"\{", "{")
                                            .replace(r"\}", "}")) + "$")
        self.routes.append(Route(method.upper(), pattern, regex, handler, auth, scope))

    def accept_session_cookie(self, prefix: str) -> None:
        """Bearer routes whose pattern starts with ``prefix`` also accept the session cookie."""
        self.cookie_prefixes.append(prefix)

    def mount(self, prefix: str, resource: IResource, auth: str = "none", scope: str | None = None) -> None:
        """Delegate ``prefix/...`` to a twisted.web resource (after rate limiting, auth and scope)."""
        scope = _checked_scope(f"mount {prefix}", auth, scope)
        self.mounts.append((prefix.rstrip("/"), resource, auth, scope))
        self.mounts.sort(key=lambda m: -len(m[0]))

    def requirement(self, method: str, path: str) -> tuple[str, str | None, bool]:
        """(auth mode, scope, whether the session cookie is accepted) of the mount or route that
        will serve ``method path`` (``path`` decoded by ``route_path``); the 404/405 ``HttpError``
        the router would answer otherwise.

        Early authentication of uploads (tau.http.site) asks, so it checks exactly what the
        router will check, before a byte of the body is stored."""
        found = self._match(method, path)
        if isinstance(found[0], Route):
            route = found[0]
            return route.auth, route.scope, route.pattern.startswith(tuple(self.cookie_prefixes))
        return found[2], found[3], False

    def _match(self, method: str, path: str) -> tuple[Any, ...]:
        """The mount ``(prefix, resource, auth, scope)`` or ``(route, match)`` serving the request."""
        for mount in self.mounts:
            if path == mount[0] or path.startswith(mount[0] + "/"):
                return mount
        allowed: list[str] = []
        for route in self.routes:
            match = route.regex.match(path)
            if match is None:
                continue
            if route.method != method and not (route.method == "GET" and method == "HEAD"):
                allowed.append(route.method)
                continue
            return route, match
        if allowed:
            raise HttpError(405, "method_not_allowed", f"{method} not allowed here",
                            headers={"Allow": ", ".join(sorted(set(allowed)))})
        raise HttpError(404, "not_found", "no such endpoint")

    def render(self, request: Any) -> Any:
        request.responseHeaders.removeHeader(b"server")  # twisted.web's "TwistedWeb/<version>"
        d = defer.Deferred.fromCoroutine(self._dispatch(request))
        d.addErrback(request.processingFailed)
        return NOT_DONE_YET

    async def _dispatch(self, request: Any) -> None:
        try:
            path = route_path(request.path)
        except ValueError:
            return send_error(request, HttpError(400, "bad_path", "path is not valid UTF-8"))
        method = request.method.decode("latin-1").upper()
        try:
            await self.registry.rate_limiter.check_ip(request.client_ip)
            found = self._match(method, path)
            if not isinstance(found[0], Route):
                prefix, resource, auth, scope = found
                request.route = prefix + "/*"
                await self._authenticate(request, auth, scope)
                return self._delegate(request, resource, prefix)
            route, match = found
            request.route = route.pattern
            await self._authenticate(request, route.auth, route.scope,
                                     route.pattern.startswith(tuple(self.cookie_prefixes)))
            result = await route.handler(request, **match.groupdict())
            return send_response(request, result)
        except HttpError as exc:
            send_error(request, exc)
        except StatementTimeout:
            send_error(request, HttpError(503, "query_timeout", "the query took too long and was stopped",
                                          headers={"Retry-After": "5"}))
        except HashBusy as exc:  # any handler that hashes a password (admin, password change)
            retry = str(int(exc.retry_after) + 1)
            send_error(request, HttpError(503, "unavailable", str(exc), headers={"Retry-After": retry}))

    async def _authenticate(self, request: Any, mode: str, scope: str | None, cookie: bool = False) -> None:
        if mode == "none":
            return
        early = getattr(request, "early_auth", None)
        if early is not None and early.mode == mode:  # done when the headers arrived (tau.http.site)
            request.user = await early.wait()
            require_scope(request.user, getattr(request, "scopes", frozenset()), scope)
        else:
            request.user = await authenticate_request(self.registry, request, allow_basic=(mode == "any"),
                                                      allow_cookie=cookie and mode == "bearer", scope=scope)
        await self.registry.rate_limiter.check_user(request.user.address)
        act_as(request.user.address)  # the request's database work counts against this user's share

    def _delegate(self, request: Any, resource: IResource, prefix: str) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return  # gone while authenticating: a resource would touch the dropped channel
        segments = [s for s in prefix.split("/") if s]
        request.prepath = [s.encode() for s in segments]
        request.postpath = request.postpath[len(segments):] if len(request.postpath) >= len(segments) else []
        body = resource.render(request)
        if body is NOT_DONE_YET:
            return
        request.write(body)
        request.finish()


def route_path(raw: bytes | str) -> str:
    """The request path (no query) as the router matches it: percent-decoded, strict UTF-8.

    Body sinks, body limits and early authentication match on this same string (tau.http.site),
    so ``/dav/%66iles/...`` reaches the files tree's sink as it reaches the files tree.
    Raises ``ValueError`` for a path that is not valid UTF-8 (the router answers 400)."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    return unquote(text.split("?", 1)[0], errors="strict")


def send_response(request: Any, result: Any) -> None:
    if result is NOT_DONE_YET or request.finished or getattr(request, "_disconnected", False):
        return
    if not isinstance(result, Response):
        result = json_response(result)
    # twisted.web.http.RESPONSES lacks 426 (RFC 7231 section 6.5.15)
    request.setResponseCode(result.status, b"Upgrade Required" if result.status == 426 else None)
    request.setHeader(b"content-type", result.content_type.encode())
    request.setHeader(b"cache-control", b"no-store")
    for name, value in (result.headers or {}).items():
        request.setHeader(name.encode(), value.encode())
    request.setHeader(b"content-length", str(len(result.body)).encode())
    if request.method != b"HEAD":
        request.write(result.body)
    request.finish()


def send_error(request: Any, exc: HttpError) -> None:
    if request.finished or getattr(request, "_disconnected", False):
        return
    if exc.status >= 500:
        log.error("{status} {code}: {message}", status=exc.status, code=exc.code, message=exc.message)
    request.channel.site.registry.metrics.errors.labels("http", exc.code).inc()
    body = exc.body if exc.body is not None else error_body(exc.code, exc.message, request.request_id, exc.extra)
    send_response(request, Response(body, exc.status, exc.content_type, exc.headers))


# a \u0000 escape not itself escaped (an even number of backslashes before it)
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


async def read_json(request: Any) -> Any:
    """The request body as JSON; 400 ``invalid_json`` for anything else.

    Strings with NUL are refused here, once for every endpoint: PostgreSQL cannot store NUL in
    text, so one would otherwise surface as a 500 wherever such a string reaches the database.
    """
    request.content.seek(0)
    raw = request.content.read()
    if not raw.strip():
        raise HttpError(400, "invalid_json", "request body must be a JSON object")
    try:
        text = raw.decode("utf-8")
        body = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise HttpError(400, "invalid_json", "request body is not valid JSON")
    if "\\" in text and _NUL_ESCAPE.search(text):
        raise HttpError(400, "invalid_json", "JSON strings must not contain NUL characters")
    return body


async def read_json_object(request: Any) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise HttpError(400, "invalid_json", "request body must be a JSON object")
    return body


def read_form(request: Any) -> dict[str, str]:
    """A urlencoded form as str → str (first value); 400 ``invalid_form`` when it is not one."""
    ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if ctype != b"application/x-www-form-urlencoded":
        raise HttpError(400, "invalid_form", "expected application/x-www-form-urlencoded")
    from urllib.parse import parse_qsl

    request.content.seek(0)
    raw = request.content.read()
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw), max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "invalid_form", "form body is malformed")
    out: dict[str, str] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def query_arg(request: Any, name: str, default: str | None = None) -> str | None:
    values = request.args.get(name.encode())
    if not values:
        return default
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "invalid_query", f"query parameter {name} is not UTF-8")
