"""The resource model stores implement (RFC 4918 §5): a provider resolves paths to resources.

A ``DavProvider`` owns one mounted tree (``/dav/files``; CalDAV's ``/dav/calendars`` later) and
turns request path segments into a ``Resolved`` (the resource or None, and its parent
collection). ``Resource`` and ``Collection`` carry the data the protocol modules need; every
storage operation is an async method so stores do their I/O in transactions and threads.
Locks are keyed by ``Resolved.lock_key`` (a canonical path owned by the provider), so a
resource reached through two URLs (a share) is locked once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


class Body(Protocol):
    """A request body already streamed to storage by a body sink (see ``tau.dav.put``)."""

    size: int

    async def finish(self) -> Any:
        """Seal the upload; the store then references what this returns (a blob)."""

    async def abort(self) -> None:
        """Throw the upload away."""


class Resource(ABC):
    """One DAV resource: data plus the live-property facts the core publishes."""

    __slots__ = ()  # subclasses may use slots (a 1,000-member listing builds a thousand of them)

    is_collection: bool = False
    #: extra ``DAV:resourcetype`` children (Clark names), e.g. ``{urn:ietf:params:xml:ns:caldav}calendar``
    resource_types: tuple[str, ...] = ()
    writable: bool = True

    @property
    @abstractmethod
    def name(self) -> str:
        """The last path segment (decoded)."""

    def etag(self) -> str | None:
        """The strong entity tag, quoted (``"abc"``), or None."""
        return None

    def content_type(self) -> str | None:
        return None

    def content_length(self) -> int | None:
        return None

    def last_modified(self) -> float | None:
        """Seconds since the epoch."""
        return None

    def creation_date(self) -> float | None:
        return None

    def display_name(self) -> str | None:
        return None

    def extra(self) -> dict[str, Any]:
        """Store-specific live values that registered properties read (CalDAV's ctag...)."""
        return {}

    async def dead_properties(self) -> dict[str, str]:
        """Clark name → the property element as a self-contained XML fragment."""
        return {}

    def loaded_dead_properties(self) -> dict[str, str] | None:
        """``dead_properties`` when known without I/O (preloaded by ``members``), else None."""
        return None

    async def patch_properties(self, set_props: dict[str, str], remove: list[str]) -> None:
        """Store and remove dead properties atomically (RFC 4918 §9.2)."""
        from tau.dav.errors import DavError

        raise DavError(403, "properties of this resource cannot be changed")

    async def open(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The body bytes ``[start, end)`` as an async iterator of chunks."""
        raise NotImplementedError
        yield b""  # pragma: no cover


@dataclass
class SyncResult:
    """What changed since a sync token (RFC 6578 §3): names relative to the collection."""

    token: str
    changed: list[tuple[list[str], Resource]] = field(default_factory=list)
    removed: list[list[str]] = field(default_factory=list)
    #: cut short by DAV:limit (RFC 6578 §3.7): ``token`` then names the state after these changes
    truncated: bool = False


class Collection(Resource):
    """A resource with members (RFC 4918 §5.2)."""

    __slots__ = ()

    is_collection = True

    @abstractmethod
    async def members(self) -> list[Resource]:
        """Every internal member, with dead properties preloaded where that is cheaper."""

    @abstractmethod
    async def member(self, name: str) -> Resource | None: ...

    async def create_collection(self, name: str, body: Any = None) -> Resource:
        from tau.dav.errors import DavError

        raise DavError(403, "collections cannot be created here")

    async def put_member(self, name: str, body: Body, content_type: str | None,
                         existing: Resource | None) -> Resource:
        """Create or replace a non-collection member from a streamed body."""
        from tau.dav.errors import DavError

        raise DavError(403, "members cannot be stored here")

    async def delete_member(self, member: Resource) -> None:
        from tau.dav.errors import DavError

        raise DavError(403, "members cannot be deleted here")

    async def transfer(self, source: Resource, name: str, move: bool, depth_infinity: bool,
                       replace: Resource | None) -> Resource:
        """COPY or MOVE ``source`` (from any collection of the same provider) to ``name`` here.

        ``replace`` is the existing destination member, deleted first (RFC 4918 §9.8.4).
        """
        from tau.dav.errors import DavError

        raise DavError(403, "cannot copy or move here")

    #: ``sync_changes`` takes ``limit`` (DAV:limit) and truncates itself; otherwise the core answers
    #: a result over the limit with 507 ``DAV:number-of-matches-within-limits``
    sync_limit_supported: bool = False

    def sync_token(self) -> str | None:
        """The current ``DAV:sync-token`` (RFC 6578 §4), or None when sync is unsupported."""
        return None

    async def sync_changes(self, token: str | None, infinite: bool, limit: int | None = None) -> SyncResult:
        from tau.dav.errors import DavError

        raise DavError(403, "sync-collection not supported", "<D:valid-sync-token/>")

    async def quota(self) -> tuple[int, int | None] | None:
        """(used bytes, available bytes or None for unlimited) (RFC 4331), or None."""
        return None


@dataclass
class Resolved:
    """A request path resolved by a provider."""

    segments: list[str]
    resource: Resource | None
    parent: Collection | None
    lock_key: tuple[str, ...]


class DavProvider(ABC):
    """One mounted DAV tree; resolves paths for the authenticated principal."""

    @abstractmethod
    async def resolve(self, user: Any, segments: list[str]) -> Resolved:
        """Resolve the path below the mount. Raise DavError 404 (never 403) for what ``user``
        may not see, so existence does not leak; 403 for what it sees but may not change."""

    def lock_owner(self, key: tuple[str, ...]) -> str | None:
        """The address of the user whose tree the lock key ``key`` is in, or None.

        That user may remove anyone's lock there and writes through it (``DavContext.overrides``).
        """
        return None

    def supported_reports(self, resource: Resource) -> list[str]:
        """Clark names of REPORTs ``resource`` answers (RFC 3253 §3.1.5)."""
        return ["{DAV:}sync-collection"] if resource.is_collection else []
