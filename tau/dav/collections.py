"""What the CalDAV and CardDAV trees share: the collection error type, fixed virtual collections,
member resources backed by a stored row, the sized PUT body sink and sync-collection tokens.

A domain's tree subclasses these with its own media type, error mapping and token prefix; the
behaviour (ETags, ranges, token validation, the 403 ``DAV:valid-sync-token`` answers) is written
once here so both trees answer alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from tau.dav.errors import DavError
from tau.dav.resource import Collection, Resource, SyncResult
from tau.http.sinks import WriteOnlyBody


class CollectionError(Exception):
    """A domain's refusal about a collection or one of its members (HTTP status, stable code,
    message); the DAV edge turns it into a DavError, the REST edge into an HttpError."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Fixed(Collection):
    """A virtual collection with a fixed name and members."""

    writable = False

    def __init__(self, name: str, items: list[Resource] | None = None, types: tuple[str, ...] = ()) -> None:
        self._name, self._items, self.resource_types = name, items or [], types

    @property
    def name(self) -> str:
        return self._name

    async def members(self) -> list[Resource]:
        return list(self._items)

    async def member(self, name: str) -> Resource | None:
        return next((m for m in self._items if m.name == name), None)


class MemberResource(Resource):
    """A collection member whose body is a stored row's text (``access``: how the viewer holds
    the collection; None for the server itself)."""

    def __init__(self, row: Any, access: Any = None) -> None:
        self.row, self.access = row, access
        self.writable = access.writable if access is not None else True

    @property
    def name(self) -> str:
        return str(self.row.name)

    def etag(self) -> str | None:
        return str(self.row.etag)

    def content_length(self) -> int | None:
        return int(self.row.size)

    def last_modified(self) -> float | None:
        return float(self.row.modified_at)

    def creation_date(self) -> float | None:
        return float(self.row.created_at)

    async def open(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        yield (self.row.data or "").encode("utf-8")[start:end]


class SizedBody(WriteOnlyBody):
    """PUT body sink kept in memory up to ``limit``; over it ``too_large()`` is raised at
    ``finish`` without ever holding more than ``limit`` bytes."""

    def __init__(self, request: Any, length: int | None, limit: int) -> None:
        self._buf = bytearray()
        self.limit = limit
        self.overflowed = length is not None and length > limit
        self.size = 0

    def too_large(self) -> Exception:
        return DavError(413, f"over {self.limit} bytes")

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.overflowed:
            return
        if len(self._buf) + len(data) > self.limit:
            self.overflowed, self._buf = True, bytearray()
            return
        self._buf += data

    async def finish(self) -> bytes:
        if self.overflowed:
            raise self.too_large()
        return bytes(self._buf)

    async def abort(self) -> None:
        self._buf = bytearray()


class SyncTokens:
    """``PREFIX<collection id>-<seq>`` sync tokens (RFC 6578 §3.2) of one kind of collection."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def token(self, collection_id: int, seq: int) -> str:
        return f"{self.prefix}{collection_id}-{seq}"

    def parse(self, token: str, collection_id: int, current: int) -> int:
        """The sequence a client's token names; 403 ``DAV:valid-sync-token`` for another
        collection's, a malformed one or one from the future."""
        bad = DavError(403, "invalid sync token", "<D:valid-sync-token/>")
        if not token.startswith(self.prefix):
            raise bad
        cid, _, seq = token[len(self.prefix):].partition("-")
        if not cid.isdigit() or not seq.isdigit() or int(cid) != collection_id or int(seq) > current:
            raise bad
        return int(seq)

    def result(self, collection_id: int, state: tuple[Any, ...] | None, wrap: Callable[[Any], Resource],
               ) -> SyncResult:
        """A sync-collection answer from a store's ``(seq, changed rows, removed names[, truncated])``;
        None (the token is older than the remembered tombstones) is 403."""
        if state is None:
            raise DavError(403, "sync token too old; sync again from scratch", "<D:valid-sync-token/>")
        seq, changed, removed = state[0], state[1], state[2]
        truncated = bool(state[3]) if len(state) > 3 else False
        result = SyncResult(self.token(collection_id, seq), truncated=truncated)
        result.changed = [([row.name], wrap(row)) for row in changed]
        result.removed = [[name] for name in removed]
        return result



class StoredCollection(Collection):
    """A stored collection (calendar, address book) as one user sees it: ``stored`` is its row
    (id, name, display name, sync_seq, times), ``access.name`` its segment in the viewer's home;
    the ETag changes with every member change (the ctag)."""

    stored: Any
    access: Any

    @property
    def name(self) -> str:
        return str(self.access.name)

    def etag(self) -> str | None:
        return f'"{self.stored.id}-{self.stored.sync_seq}"'

    def display_name(self) -> str | None:
        return str(self.stored.display_name or self.stored.name)

    def last_modified(self) -> float | None:
        return float(self.stored.modified_at)

    def creation_date(self) -> float | None:
        return float(self.stored.created_at)
