"""Sharing: public links ``/s/TOKEN`` and shares between users (``POST /api/shares``).

A link may expire, carry an argon2id password (checked through the bounded hashing gate; a correct
answer is remembered for a few minutes so a browser's many requests cost one hash) and allow uploads
into a shared folder. Folder links list their contents as JSON, download one file with
``?path=``, or the whole folder as a streamed ZIP with ``?download=zip``. A user share
(``{"file_id", "user", "permission": "read"|"write"}``) makes the node appear in the
recipient's ``Shared/``. Unknown, revoked and expired links are all 404.

Password guesses are throttled like logins (tau.auth.throttle: per link, per client IP and per
pair, exponential back-off): a locked guesser gets 429 + ``Retry-After`` without any hashing, and
the owner's other visitors keep their own allowance. When the hashing queue is full the answer is
503 + ``Retry-After`` (tau.auth.hashgate).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from twisted.web.server import NOT_DONE_YET

from tau.auth import accounts
from tau.auth.hashgate import HashBusy
from tau.auth.passwords import hash_password, verify_password
from tau.auth.throttle import LoginThrottle
from tau.dav.server import BoundedBody
from tau.files import listing, lookup, sharepage, sharestore, store
from tau.files.api import http_error, item, parse_path, rfc3339, send_file
from tau.files.service_tree import FileTree
from tau.files.store import FilesError, Node
from tau.files.uploads import upload_factory
from tau.files.zipstream import ZipStream
from tau.http import usercontent
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, query_arg, read_json_object

if TYPE_CHECKING:
    from tau.registry import Registry

PASSWORD_TTL = 600.0


def _epoch(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise HttpError(400, "invalid_expires_at", "expires_at must be an RFC 3339 time")


class Shares:
    def __init__(self, registry: Registry, tree: FileTree) -> None:
        self.registry, self.tree = registry, tree
        self._unlocked: dict[str, float] = {}
        self._throttle = LoginThrottle(registry.clock)

    async def create(self, request: Any) -> Response:
        body = await read_json_object(request)
        file_id = str(body.get("file_id", ""))
        if not file_id.isdigit():
            raise HttpError(400, "invalid_file_id", "file_id is required")
        found = await self.tree.run("files_locate", lookup.locate, request.user.id, int(file_id))
        if found is None or found[0].user_id != request.user.id:
            raise HttpError(404, "not_found", "no such file in your tree")
        node: Node = found[0]
        if body.get("user"):
            return await self._grant(request, node, str(body["user"]), str(body.get("permission", "read")))
        expires = _epoch(body.get("expires_at"))
        password = body.get("password")
        if password is not None and (not isinstance(password, str) or not 1 <= len(password) <= 1024):
            raise HttpError(400, "invalid_password", "password must be a non-empty string")
        hashed = await self._hash(hash_password, password) if password else None
        token = secrets.token_urlsafe(24)
        share = await self.tree.run("files_share_link", sharestore.create_link, request.user.id, node.id, token,
                                    hashed, bool(body.get("can_upload")) and node.is_folder, expires)
        return json_response({"id": str(share.id), "token": token, "url": f"{self.registry.public_url}/s/{token}"},
                             201)

    async def _grant(self, request: Any, node: Node, address: str, permission: str) -> Response:
        if permission not in ("read", "write"):
            raise HttpError(400, "invalid_permission", "permission is read or write")
        try:
            address = accounts.normalize_address(address)
        except accounts.AccountError as exc:
            raise HttpError(400, exc.code, exc.message)
        grantee = await self.registry.users.get(address)
        if grantee is None or grantee.id == request.user.id or node.parent_id is None:
            raise HttpError(400, "invalid_user", "cannot share this with that user")
        share = await self.tree.run("files_share_grant", sharestore.grant, request.user.id, node.id, grantee.id,
                                    permission)
        return json_response({"id": str(share.id), "user": address, "permission": permission}, 201)

    async def listing(self, request: Any) -> Response:
        shares = await self.tree.run("files_shares", sharestore.list_owned, request.user.id)
        return json_response({"items": [{
            "id": str(s.id), "file_id": str(s.node_id), "type": "user" if s.grantee_id else "link",
            "permission": s.permission, "can_upload": s.can_upload, "has_password": bool(s.password_hash),
            "expires_at": rfc3339(s.expires_at) if s.expires_at else None} for s in shares], "next_cursor": None})

    async def revoke(self, request: Any, id: str) -> Response:
        if not id.isdigit() or not await self.tree.run("files_share_revoke", sharestore.revoke, request.user.id,
                                                       int(id)):
            raise HttpError(404, "not_found", "no such share")
        return Response(b"", 204)

    # -- public side ---------------------------------------------------------------------------
    async def _open(self, request: Any, token: str) -> tuple[sharestore.Share, Node]:
        found = await self.tree.run("files_share_token", sharestore.by_token, token) if len(token) < 100 else None
        if found is None or found[0].grantee_id is not None or found[0].expired(self.registry.clock.seconds()):
            raise HttpError(404, "not_found", "no such share")
        share, node = found
        if share.password_hash and not sharepage.unlocked(
                self.registry.keys.derive("files:share-unlock"), token,
                request.getCookie(sharepage.UNLOCK_COOKIE.encode()), self.registry.clock.seconds()):
            await self._check_password(request, token, share.password_hash)
        return share, node

    async def _check_password(self, request: Any, token: str, stored: str) -> None:
        given = query_arg(request, "password")
        header = request.getHeader(b"authorization") or b""
        if given is None and header[:6].lower() == b"basic ":
            try:
                given = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                given = None
        if given is None:
            raise HttpError(401, "password_required", "this link needs a password",
                            headers={"WWW-Authenticate": 'Basic realm="shared link"'})
        link, ip = "share:" + sharestore.token_hash(token), request.client_ip
        wait = self._throttle.retry_after(link, ip)
        if wait > 0:  # checked before the memo too: a locked guesser learns nothing at all
            retry = str(int(wait) + 1)
            raise HttpError(429, "too_many_attempts", f"too many wrong passwords; retry in {retry} s",
                            headers={"Retry-After": retry})
        memo = hmac.new(self.registry.keys.derive("files:share-memo"), f"{token}\0{given}".encode(),
                        hashlib.sha256).hexdigest()
        now = self.registry.clock.seconds()
        if self._unlocked.get(memo, 0) > now:
            return
        if not await self._hash(verify_password, stored, given):
            self._throttle.failure(link, ip)
            raise HttpError(401, "invalid_password", "wrong password",
                            headers={"WWW-Authenticate": 'Basic realm="shared link"'})
        self._throttle.success(link, ip)
        if len(self._unlocked) > 10_000:
            self._unlocked.clear()
        self._unlocked[memo] = now + PASSWORD_TTL

    async def _hash(self, fn: Any, *args: Any) -> Any:
        """argon2id through the registry's bounded gate; a full queue is 503, not a longer wait."""
        try:
            return await self.registry.run_password_hash(fn, *args)
        except HashBusy as exc:
            retry = str(int(exc.retry_after) + 1)
            raise HttpError(503, "unavailable", "busy checking passwords; try again shortly",
                            headers={"Retry-After": retry})

    async def public_get(self, request: Any, token: str) -> Any:
        request.setHeader(b"vary", b"Accept")
        if not sharepage.wants_html(request):
            return await self._public_get(request, token)
        try:
            return await self._public_page(request, token)
        except HttpError as exc:
            return sharepage.error_page(exc.status, exc.code, token, exc.headers or {})

    async def _public_page(self, request: Any, token: str) -> Any:
        """The HTML side of ``/s/TOKEN`` (tau.files.sharepage)."""
        share, node = await self._open(request, token)
        key = self.registry.keys.derive("files:share-unlock")
        if share.password_hash and query_arg(request, "password") is not None:
            from tau.http.cookie_session import is_secure

            return sharepage.set_unlock(request, key, token, self.registry.clock.seconds(),
                                        is_secure(self.registry, request))
        sub = parse_path(query_arg(request, "path", "/"))
        if sub and node.is_folder:
            _, found = await self.tree.run("files_share_walk", store.walk, node, sub)
            if found is None:
                raise HttpError(404, "not_found", "no such file in this share")
            node = found
        path = "/" + "/".join(sub)
        if not node.is_folder:
            return sharepage.file_page(token, node.name, node.size, path if sub else None)
        kids = await self.tree.run("files_list", store.children, node.id)
        return sharepage.folder_page(token, node.name, [item(k, sub + [k.name]) for k in kids], path)

    async def _public_get(self, request: Any, token: str) -> Any:
        share, node = await self._open(request, token)
        sub = parse_path(query_arg(request, "path", "/"))
        if sub:
            if not node.is_folder:
                raise HttpError(404, "not_found", "no such file in this share")
            _, found = await self.tree.run("files_share_walk", store.walk, node, sub)
            if found is None:
                raise HttpError(404, "not_found", "no such file in this share")
            node = found
        if not node.is_folder:
            await send_file(self.tree, request, node, node.name)
            return NOT_DONE_YET
        if query_arg(request, "download") == "zip":
            name = (node.name or "files") + ".zip"
            usercontent.apply(request, usercontent.user_content_headers("application/zip", name, inline_ok=False))
            from tau.dav.get import stream_body

            await stream_body(request, self._zip(node))
            return NOT_DONE_YET
        kids = await self.tree.run("files_list", store.children, node.id)
        items = [{k: v for k, v in item(k_, sub + [k_.name]).items() if k != "id"} for k_ in kids]
        return json_response({"name": node.name, "type": "folder", "can_upload": share.can_upload,
                              "items": items})

    async def _zip(self, folder: Node) -> AsyncIterator[bytes]:
        entries = await self.tree.run("files_zip_list", listing.tree_listing, folder.id)
        z = ZipStream()
        for path, node in entries:
            yield z.begin("/".join(path), node.modified_at, node.is_folder)
            if not node.is_folder and node.blob_key:
                reader = self.tree.read(node.blob_key)
                try:  # closed here, awaited: a client leaving mid-file must not leave it to the GC
                    async for chunk in reader:
                        yield z.data(chunk)
                finally:
                    await reader.aclose()
            yield z.end()
        yield z.finish()

    async def public_upload(self, request: Any, token: str) -> Response:
        share, node = await self._open(request, token)
        body = request.content
        if not share.can_upload or not node.is_folder:
            raise HttpError(403, "forbidden", "this link does not accept uploads")
        if not hasattr(body, "finish"):
            raise HttpError(400, "invalid_body", "upload body missing")
        name = query_arg(request, "name") or getattr(body, "filename", None)
        segments = parse_path(name.replace("\\", "/").rsplit("/", 1)[-1] if name else None)
        if len(segments) != 1:
            raise HttpError(400, "invalid_path", "name one file")
        existing = await self.tree.run("files_child", store.child, node.id, segments[0])
        if existing is not None:
            raise HttpError(409, "exists", "a file with that name exists")
        from tau.files.davtree import _content_type

        try:
            created = await self.tree.store_upload(body, node.id, segments[0], _content_type(segments[0], None))
        except FilesError as exc:
            raise http_error(exc)
        return json_response({"name": created.name, "size": created.size}, 201)


def register(registry: Registry, http: Any, tree: FileTree) -> None:
    shares = Shares(registry, tree)
    http.route("POST", "/api/shares", shares.create, scope="files")
    http.route("GET", "/api/shares", shares.listing, scope="files")
    http.route("DELETE", "/api/shares/{id}", shares.revoke, scope="files")
    http.route("GET", "/s/{token}", shares.public_get, auth="none")
    http.route("POST", "/s/{token}", shares.public_upload, auth="none")
    http.site.add_body_sink("/s/", {"POST"}, upload_factory(tree.blobs.writer))
    http.site.add_body_sink("/s/", {"GET", "HEAD"}, lambda request, length: BoundedBody(request, length, 0))
    http.site.set_body_limit("/s/", None)
