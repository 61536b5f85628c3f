"""Chat attachments: ``POST /api/messages/attachments?conversation=ID`` stores an opaque blob,
``GET /api/messages/attachments/{id}`` streams it back, ``DELETE`` drops an upload of one's own.

Signal's way (its "attachment pointer"): the sending client encrypts the file with a fresh random
key, uploads only the ciphertext here and sends the key, the ciphertext's digest, the file name
and size inside the end-to-end encrypted message. The server never sees a name, a type or a
byte of plaintext. An upload is bound to one conversation: only that conversation's current
members may fetch it (anyone else gets the same 404 as for an id that does not exist), and its
bytes count against the uploader's quota (``users.quota_bytes`` or ``[limits] quota_bytes``;
chat attachments have their own account of it, next to mail and files). One upload may be at
most ``[limits] message_size`` bytes, the size of the largest mail. The body is streamed into
the blob store (never held in memory), refused at the headers when its declared length cannot
fit and cut off as soon as the streamed bytes pass what is left.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from twisted.web.server import NOT_DONE_YET

from tau.blobs.store import BlobStore
from tau.dav.get import finish_empty, stream_body
from tau.dav.put import UploadBody
from tau.http import usercontent
from tau.http.errors import HttpError
from tau.http.gate import BodyCap
from tau.http.router import json_response, query_arg
from tau.messenger import attachment_store, conversations
from tau.messenger.domain import Messenger, int_id
from tau.messenger.errors import MessengerError

if TYPE_CHECKING:
    from tau.registry import Registry

PREFIX = "/api/messages/attachments"
READ_BATCH = 1024 * 1024


def attachment_blobs(registry: Registry) -> BlobStore:
    """Same backend and master key as everything else, its own address key (tau.blobs.orphans)."""
    keys = registry.keys
    return BlobStore(registry.blob_backend, keys.blob_master_key, keys.derive("messenger:attachment-address"),
                     registry.run_in_thread)


def _too_big(limit: int) -> HttpError:
    return HttpError(413, "too_large", f"an attachment is at most {limit} bytes")


def _over_quota() -> HttpError:
    return HttpError(507, "quota_exceeded", "storage quota exceeded")


def _not_found() -> HttpError:
    return HttpError(404, "not_found", "no such attachment")


class Attachments:
    def __init__(self, registry: Registry, messenger: Messenger, blobs: BlobStore) -> None:
        self.registry = registry
        self.messenger = messenger
        self.blobs = blobs
        self.max_size: int = registry.config.limits.message_size
        self.default_quota: int = registry.config.limits.quota_bytes

    def _quota(self, user: Any) -> int:
        value = getattr(user, "quota_bytes", None)
        return int(value) if value is not None else self.default_quota

    async def _conversation(self, request: Any, user: Any) -> int:
        """The conversation named by ``?conversation=``, if ``user`` is a member (else 404)."""
        try:
            conv_id = int_id(query_arg(request, "conversation"), "conversation")
        except MessengerError as exc:
            raise HttpError(exc.status, exc.code, exc.message)
        member = await self.registry.db.run("msg_attach_member", conversations.is_member, conv_id, user.id,
                                            readonly=True)
        if not member:
            raise HttpError(404, "conversation_not_found", "no such conversation")
        return conv_id

    async def admit(self, request: Any, user: Any, length: int | None) -> BodyCap:
        """At the headers: a member of the conversation, within the size limit and the quota."""
        await self._conversation(request, user)
        if length is not None and length > self.max_size:
            raise _too_big(self.max_size)
        limit = self._quota(user)
        room = self.max_size
        if limit:
            used = await self.registry.db.run("msg_attach_used", attachment_store.used_bytes, user.id, readonly=True)
            free = max(0, limit - used)
            if length is not None and length > free:
                raise _over_quota()
            if free < room:
                return BodyCap(free, _over_quota())
        return BodyCap(room, _too_big(self.max_size))

    async def upload(self, request: Any) -> Any:
        body = request.content
        if not hasattr(body, "finish"):
            raise HttpError(400, "invalid_body", "upload body missing")
        user = request.user
        conv_id = await self._conversation(request, user)
        info = await body.finish()
        if info.size > self.max_size:
            raise _too_big(self.max_size)
        attachment_id = secrets.token_urlsafe(18)
        limit = self._quota(user)
        now = self.messenger.now_ms()

        def add(txn: Any) -> bool:
            if limit and attachment_store.used_bytes(txn, user.id) + info.size > limit:
                return False
            attachment_store.add(txn, attachment_id, user.id, conv_id, info.key, info.size, now)
            return True

        # a refused or failed insert leaves an unreferenced blob: the orphan sweeper deletes it
        if not await self.registry.db.run("msg_attach_add", add):
            raise _over_quota()
        return json_response({"id": attachment_id, "size": info.size, "conversation": str(conv_id)}, 201)

    async def download(self, request: Any, attachment_id: str) -> Any:
        found = await self.registry.db.run("msg_attach_get", attachment_store.readable, attachment_id,
                                           request.user.id, readonly=True)
        if found is None:
            raise _not_found()
        request.setResponseCode(200)
        # ciphertext: never rendered, always a download (tau.http.usercontent's hardening headers)
        usercontent.apply(request, usercontent.user_content_headers("application/octet-stream", None,
                                                                    inline_ok=False))
        request.setHeader(b"cache-control", b"private, no-store")
        request.setHeader(b"content-length", str(found["size"]).encode())
        if request.method == b"HEAD" or not found["size"]:
            finish_empty(request)
            return NOT_DONE_YET
        await stream_body(request, self._chunks(found["blob_key"]))
        return NOT_DONE_YET

    async def _chunks(self, key: str) -> Any:
        reader = self.blobs.stream(key, 0, None, READ_BATCH)
        try:
            while piece := await reader.read_chunk():
                yield piece
        finally:
            await reader.aclose()

    async def delete(self, request: Any, attachment_id: str) -> Any:
        if not await self.registry.db.run("msg_attach_delete", attachment_store.delete_owned, attachment_id,
                                          request.user.id):
            raise _not_found()
        return json_response({})


def register(registry: Registry, http: Any, messenger: Messenger) -> None:
    attachments = Attachments(registry, messenger, attachment_blobs(registry))
    http.site.add_body_sink(PREFIX, {"POST"}, lambda request, length: UploadBody(request, length,
                                                                                attachments.blobs.writer),
                            auth="bearer")
    http.site.add_body_admission(PREFIX, {"POST"}, attachments.admit)
    http.site.set_body_limit(PREFIX, None)
    http.route("POST", PREFIX, attachments.upload, scope="chat")
    http.route("GET", PREFIX + "/{attachment_id}", attachments.download, scope="chat")
    http.route("DELETE", PREFIX + "/{attachment_id}", attachments.delete, scope="chat")
