"""TauCloud's file tree as DAV resources (``tau.dav.resource``) mounted at ``/dav/files/``.

``/dav/files/`` lists the caller's home; ``/dav/files/USER/...`` is USER's tree, which only
USER may reach (anyone else gets 403 whether or not USER exists, so nothing leaks);
``USER/Shared/NAME/...`` reaches folders and files other users shared with USER.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

from tau.dav.errors import DavError
from tau.dav.quota import available, insufficient_storage
from tau.dav.resource import Collection, DavProvider, Resolved, Resource, SyncResult
from tau.files import lookup, store
from tau.files.lookup import Lookup
from tau.files.service_tree import FileTree
from tau.files.store import FilesError, Node
from tau.http import usercontent

TOKEN_PREFIX = "urn:tau:files:sync:"
NO_PROPS: dict[str, str] = {}  # shared by members without dead properties: never modified


def dav_error(exc: FilesError) -> DavError:
    if isinstance(exc, store.QuotaExceeded):
        return insufficient_storage(exc.used, exc.limit, exc.needed)
    return DavError(exc.status, exc.message)


class NodeResource(Resource):
    __slots__ = ("tree", "node", "info", "_props", "_alias", "writable")

    def __init__(self, tree: FileTree, node: Node, info: Lookup, props: dict[str, str] | None = None,
                 alias: str | None = None) -> None:
        self.tree, self.node, self.info = tree, node, info
        self._props = props
        self._alias = alias
        self.writable = info.writable

    @property
    def name(self) -> str:
        return self._alias or self.node.name

    def etag(self) -> str | None:
        return self.node.etag

    def last_modified(self) -> float | None:
        return float(self.node.modified_at)

    def creation_date(self) -> float | None:
        return float(self.node.created_at)

    def loaded_dead_properties(self) -> dict[str, str] | None:
        return self._props

    async def dead_properties(self) -> dict[str, str]:
        if self._props is None:
            self._props = (await self.tree.run("files_props", store.props_of, [self.node.id]))[self.node.id]
        return self._props

    async def patch_properties(self, set_props: dict[str, str], remove: list[str]) -> None:
        if not self.writable:
            raise DavError(403, "read-only share")
        await self.tree.run("files_proppatch", store.set_props, self.node.id, set_props, remove)
        self._props = None


class FileResource(NodeResource):
    __slots__ = ()

    def content_type(self) -> str | None:
        # canonical also for rows stored before uploads were normalised
        return usercontent.canonical_type(self.node.content_type)

    def content_length(self) -> int | None:
        return self.node.size

    def open(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:  # type: ignore[override]
        if not self.node.blob_key:
            return _empty()
        return self.tree.read(self.node.blob_key, start, end)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


class FolderResource(NodeResource, Collection):
    __slots__ = ("shares",)

    def __init__(self, *args: Any, shares: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shares = shares or []

    async def members(self) -> list[Resource]:
        nodes, props = await self.tree.run("files_list", lookup.member_lookups, self.node.id)
        out: list[Resource] = [self._wrap(n, props.get(n.id, NO_PROPS)) for n in nodes]
        if self.shares and self.node.parent_id is None and self.info.canonical[1:] == []:
            out.append(SharedRoot(self.tree, self.info))
        return out

    def _wrap(self, node: Node, props: dict[str, str] | None = None) -> NodeResource:
        cls = FolderResource if node.is_folder else FileResource
        return cls(self.tree, node, self.info, props)

    async def member(self, name: str) -> Resource | None:
        node = await self.tree.run("files_child", store.child, self.node.id, name)
        return None if node is None else self._wrap(node)

    def _writable(self) -> None:
        if not self.writable:
            raise DavError(403, "read-only share")

    async def create_collection(self, name: str, body: Any = None) -> Resource:
        if body is not None:
            raise DavError(415, "extended MKCOL is not supported for folders")
        self._writable()
        if name == lookup.SHARED and self.node.parent_id is None and self.shares:
            raise DavError(405, "Shared is reserved for folders shared with you")
        try:
            node = await self.tree.run("files_mkcol", store.make_folder, self.node, name)
        except FilesError as exc:
            raise dav_error(exc)
        return self._wrap(node)

    async def put_member(self, name: str, body: Any, content_type: str | None,
                         existing: Resource | None) -> Resource:
        self._writable()
        old = existing.content_length() if existing is not None else 0
        if self.info.limit and self.info.used - (old or 0) + body.size > self.info.limit:
            await body.abort()
            raise insufficient_storage(self.info.used, self.info.limit, body.size)
        ctype = _content_type(name, content_type)
        try:
            node = await self.tree.store_upload(body, self.node.id, name, ctype)
        except FilesError as exc:
            raise dav_error(exc)
        return self._wrap(node)

    async def delete_member(self, member: Resource) -> None:
        self._writable()
        if not isinstance(member, NodeResource) or member.info.share_parent:
            raise DavError(403, "cannot delete this")
        try:
            await self.tree.delete(member.node.id)
        except FilesError as exc:
            raise dav_error(exc)

    async def transfer(self, source: Resource, name: str, move: bool, depth_infinity: bool,
                       replace: Resource | None) -> Resource:
        self._writable()
        if not isinstance(source, NodeResource) or (move and (source.info.share_parent or not source.writable)):
            raise DavError(403, "cannot move this resource")
        replace_id = replace.node.id if isinstance(replace, NodeResource) else None
        try:
            node, _ = await self.tree.run("files_move" if move else "files_copy", store.transfer,
                                          self.tree.blobs.sync, source.node.id, self.node.id, name, move,
                                          depth_infinity, replace_id, self.tree.default_quota)
        except FilesError as exc:
            raise dav_error(exc)
        return self._wrap(node)

    def sync_token(self) -> str | None:
        return f"{TOKEN_PREFIX}{self.info.seq}"

    sync_limit_supported = True

    async def sync_changes(self, token: str | None, infinite: bool, limit: int | None = None) -> SyncResult:
        since, after = _parse_token(token, self.info.seq)
        try:
            page = await self.tree.run("files_sync", lookup.sync_state, self.node.id, since, infinite, after, limit)
        except lookup.SyncLimitTooSmall as exc:
            raise DavError(507, str(exc), "<D:number-of-matches-within-limits/>")
        if page is None:
            raise DavError(403, "sync token too old; sync again from scratch", "<D:valid-sync-token/>")
        result = SyncResult(_format_token(page.seq, page.after), truncated=page.truncated)
        for rel, node in page.items:
            if node is None:
                result.removed.append(rel)
            else:
                result.changed.append((rel, self._wrap(node)))
        return result

    async def quota(self) -> tuple[int, int | None] | None:
        return self.info.used, available(self.info.used, self.info.limit)


class SharedRoot(Collection):
    """The virtual ``Shared/`` folder: one member per share granted to the caller."""

    writable = False

    def __init__(self, tree: FileTree, info: Lookup) -> None:
        self.tree, self.info = tree, info

    @property
    def name(self) -> str:
        return lookup.SHARED

    def etag(self) -> str | None:
        return f'"shared-{len(self.info.shares)}"'

    async def members(self) -> list[Resource]:
        out: list[Resource] = []
        for name, share, node, owner in self.info.shares:
            view = Lookup("node", node, None, share.owner_id, owner, share.permission == "write",
                          [owner], self.info.used, self.info.seq, 0, share_parent=True)
            cls = FolderResource if node.is_folder else FileResource
            out.append(cls(self.tree, node, view, None, alias=name))
        return out

    async def member(self, name: str) -> Resource | None:
        return next((m for m in await self.members() if m.name == name), None)


class HomesRoot(Collection):
    """``/dav/files/``: the caller's home is its only member."""

    writable = False

    def __init__(self, tree: FileTree, user: Any) -> None:
        self.tree, self.user = tree, user

    @property
    def name(self) -> str:
        return ""

    async def members(self) -> list[Resource]:
        info = await self.tree.lookup(self.user, [])
        assert info.node is not None
        return [FolderResource(self.tree, info.node, info, alias=self.user.address, shares=info.shares)]

    async def member(self, name: str) -> Resource | None:
        return next((m for m in await self.members() if m.name == name), None)


def _format_token(seq: int, after: tuple[str, ...] | None) -> str:
    """``PREFIX<seq>``, or ``PREFIX<seq>;after=<path>`` for an initial sync cut short by DAV:limit."""
    if after is None:
        return f"{TOKEN_PREFIX}{seq}"
    return f"{TOKEN_PREFIX}{seq};after=" + "/".join(quote(segment, safe="") for segment in after)


def _parse_token(token: str | None, current: int) -> tuple[int, tuple[str, ...] | None]:
    """(seq, paths known up to) of a sync token; no token is the initial sync: (0, ())."""
    if token is None:
        return 0, ()
    body = token[len(TOKEN_PREFIX):] if token.startswith(TOKEN_PREFIX) else ""
    seq_text, sep, cursor = body.partition(";after=")
    if not seq_text.isdigit() or len(seq_text) > 18 or (sep and not cursor):
        raise DavError(403, "invalid sync token", "<D:valid-sync-token/>")
    since = int(seq_text)
    if since > current:
        raise DavError(403, "sync token from the future", "<D:valid-sync-token/>")
    if not sep:
        return since, None
    try:
        return since, tuple(unquote(segment, errors="strict") for segment in cursor.split("/"))
    except UnicodeDecodeError:
        raise DavError(403, "invalid sync token", "<D:valid-sync-token/>")


def _content_type(name: str, given: str | None) -> str:
    """The type stored for an upload: the declared one in canonical form (tau.http.usercontent),
    else a guess from the name. The uploader's string is never stored as sent, so neither a
    download nor PROPFIND ``getcontenttype`` can carry ``application/zip;,text/javascript``."""
    declared = usercontent.canonical_type(given)
    if declared != usercontent.OCTET:
        return declared
    guessed, _ = mimetypes.guess_type(name)
    return usercontent.canonical_type(guessed) if guessed else usercontent.OCTET


class FilesProvider(DavProvider):
    def __init__(self, tree: FileTree) -> None:
        self.tree = tree

    def empty_writer(self) -> Any:
        return self.tree.blobs.writer()

    def lock_owner(self, key: tuple[str, ...]) -> str | None:
        """Lock keys are ``(owner address, *path in the owner's tree)``."""
        return key[0] or None if key else None

    async def resolve(self, user: Any, segments: list[str]) -> Resolved:
        if not segments:
            return Resolved([], HomesRoot(self.tree, user), None, ("",))
        if segments[0].lower() != user.address.lower():
            raise DavError(403, "not your file space")
        info = await self.tree.lookup(user, segments[1:])
        key = tuple(info.canonical)
        segs = [user.address, *segments[1:]]
        if info.kind == "shared_root":
            return Resolved(segs, SharedRoot(self.tree, info), None, key)
        resource: Resource | None = None
        if info.node is not None:
            alias = segments[-1] if info.share_parent else (user.address if len(segments) == 1 else None)
            cls = FolderResource if info.node.is_folder else FileResource
            resource = cls(self.tree, info.node, info, alias=alias, shares=info.shares) if cls is FolderResource \
                else cls(self.tree, info.node, info, alias=alias)
        parent: Collection | None = None
        if info.parent is not None:
            parent = FolderResource(self.tree, info.parent, info)
        elif info.share_parent or (len(segments) == 3 and segments[1] == lookup.SHARED and info.kind == "missing"):
            parent = SharedRoot(self.tree, info)
        return Resolved(segs, resource, parent, key)
