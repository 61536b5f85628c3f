"""The types a DAV request is served with: shared by the server and every method module.

``DavServer`` (tau.dav.server) builds one :class:`DavContext` per request and dispatches it to a
method module (get, put, propfind...) or a registered extension (CalDAV's reports); each returns
a :class:`DavResponse`. Keeping them here lets the method modules import them at module level
while the server imports the method modules: no cycle through the server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tau.dav import conditions, paths
from tau.dav.errors import DavError
from tau.dav.locks import Lock, LockSnapshot
from tau.dav.properties import PropContext
from tau.dav.resource import DavProvider, Resolved, Resource
from tau.dav.xml import MAX_BODY, parse_body

if TYPE_CHECKING:
    from tau.dav.server import DavServer


@dataclass
class DavResponse:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


MULTISTATUS = "application/xml; charset=utf-8"
Handler = Callable[["DavContext"], Awaitable["DavResponse | None"]]


@dataclass
class DavContext:
    """One request being served: what the method modules work with."""

    server: "DavServer"
    request: Any
    method: str
    resolved: Resolved
    trailing: bool
    if_lists: list[conditions.IfList]
    tokens: set[str]
    locks: LockSnapshot
    body_used: bool = False
    #: other people's locks this request overrode (the tree owner's writes): removed on success
    broken: list[Lock] = field(default_factory=list)

    @property
    def user(self) -> Any:
        return self.request.user

    @property
    def principal(self) -> str:
        return getattr(self.request.user, "address", "") or ""

    @property
    def resource(self) -> Resource | None:
        return self.resolved.resource

    @property
    def provider(self) -> DavProvider:
        return self.server.provider

    def header(self, name: str) -> str | None:
        value = self.request.getHeader(name.encode())
        return None if value is None else value.decode("latin-1")

    def href(self, segments: list[str], collection: bool = False) -> str:
        return paths.encode_path(self.server.prefix + segments, collection)

    def href_of(self, resolved: Resolved) -> str:
        res = resolved.resource
        return self.href(resolved.segments, bool(res is not None and res.is_collection))

    def lock_href(self, key: tuple[str, ...]) -> str:
        return self.server.key_href(key)

    def pctx(self, segments: list[str], key: tuple[str, ...], collection: bool,
             href: str | None = None) -> PropContext:
        return PropContext(self.href(segments, collection) if href is None else href, key, self.locks,
                           self.server.clock(), self.provider, self.user)

    def read_body(self) -> bytes:
        content = self.request.content
        if getattr(content, "overflowed", False):
            raise DavError(413, f"request body over {MAX_BODY} bytes")
        content.seek(0)
        return content.read()

    def xml_body(self, expect: str | None = None) -> Any:
        return parse_body(self.read_body(), expect)

    def depth(self, default: str = "infinity", allowed: tuple[str, ...] = ("0", "1", "infinity")) -> str:
        value = (self.header("depth") or default).strip().lower()
        if value not in allowed:
            raise DavError(400, f"Depth {value!r} not allowed for {self.method}")
        return value

    def check_write(self, key: tuple[str, ...], depth: bool = False, member_of: tuple[str, ...] | None = None) -> None:
        """423 for a lock the request may not pass; locks the tree's owner overrides are broken
        once the method succeeds (``DavServer._handle``)."""
        broken = self.locks.check_write(key, self.tokens, self.principal, depth, member_of,
                                        href=lambda lock: lock.href, overrides=self.overrides)
        self.broken += [lock for lock in broken if lock not in self.broken]

    def overrides(self, lock: Lock) -> bool:
        """May this request break or remove ``lock``, held by someone else?

        The owner of the tree the lock is in may: a share recipient's lock never locks the owner
        out of her own files (as Nextcloud's and FileRun's owners "lock over" and unlock).
        """
        if lock.principal.lower() == self.principal.lower():
            return False
        owner = self.provider.lock_owner(lock.key)
        return owner is not None and owner.lower() == self.principal.lower()

    async def resolve_other(self, segments: list[str]) -> Resolved:
        """Resolve another path (Destination, a tagged If list) and load the locks on and below it."""
        resolved = await self.provider.resolve(self.user, segments)
        self.locks.add(await self.server.lock_store.load([resolved.lock_key], [resolved.lock_key]))
        return resolved
