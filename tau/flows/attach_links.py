"""Mail → cloud, outgoing: attachments over ``[flows] attachment_link_threshold`` become share links.

Both ways a local user sends mail come through here before the message is stored: SMTP
submission (``tau.mail.smtp.message``, over the blob it has just streamed) and ``POST /api/emails``
(``tau.mail.send``, over the attachments it was given). So the rewritten message is what the
outbound worker DKIM-signs, what lands in Sent and what every recipient gets. Each attachment
goes to the sender's ``/Mail attachments/`` (under a new name when one is taken, so an earlier
link keeps serving the earlier file), with a public link like ``POST /api/shares`` makes.

When the cloud cannot take the files (over quota, a file where the folder should be, the store
failing) the message is sent unchanged, as composed: it already passed ``[limits] message_size``
so it is deliverable, the sender never asked for a link, and Thunderbird's Filelink likewise
falls back to attaching the file normally rather than not sending. The reason is logged.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from tau.flows import mime_links

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
FOLDER = "Mail attachments"


@dataclass
class Linked:
    """A message whose big attachments now live in the cloud; ``undo`` if it is not sent after all."""

    owner: "AttachmentLinks"
    node_ids: list[int]
    urls: list[str]
    key: str = ""           # SMTP: the rewritten message's blob
    size: int = 0
    entries: list[Any] = field(default_factory=list)   # API: attachments, big ones as Link

    async def undo(self) -> None:
        await self.owner.remove(self.node_ids)


def new_token() -> str:
    return secrets.token_urlsafe(24)


# -- transaction functions ------------------------------------------------------------------------

def _free_name(txn: Any, folder_id: int, name: str) -> str:
    from tau.files import store

    if store.child(txn, folder_id, name) is None:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    for n in range(2, 1000):
        candidate = f"{stem} ({n})" + (f".{ext}" if ext else "")
        if store.child(txn, folder_id, candidate) is None:
            return candidate
    return f"{stem} ({secrets.token_hex(4)})" + (f".{ext}" if ext else "")


def record(txn: Any, blobs: Any, user_id: int, items: list[tuple[str, str, str, int, str]],
           default_quota: int) -> list[int]:
    """File rows and public links for ``(name, type, blob key, size, token)``; all or nothing.

    ``bump`` first: it is the per-user write lock, so the free name chosen stays free until
    ``put_file`` (which would otherwise replace a same-named file, and with it an older link's content).
    """
    from tau.files import sharestore, store

    store.bump(txn, user_id)
    root = store.ensure_root(txn, user_id)
    folder = store.child(txn, root.id, FOLDER)
    if folder is None:
        folder = store.make_folder(txn, root, FOLDER)
    elif not folder.is_folder:
        raise store.FilesError(409, "no_parent", f"/{FOLDER} is a file")
    ids = []
    for name, ctype, key, size, token in items:
        node, _ = store.put_file(txn, blobs, folder.id, _free_name(txn, folder.id, name), key, size, ctype,
                                 default_quota)
        sharestore.create_link(txn, user_id, node.id, token, None, False, None)
        ids.append(node.id)
    return ids


def _drop(txn: Any, blobs: Any, keys: list[str]) -> None:
    from tau.files.blobrefs import drop_if_unreferenced

    for key in keys:
        drop_if_unreferenced(txn, blobs, key)


def _remove(txn: Any, blobs: Any, node_ids: list[int]) -> None:
    from tau.files import store

    for node_id in node_ids:
        try:
            store.delete_node(txn, blobs, node_id)
        except store.FilesError:
            pass        # already deleted by its owner


class AttachmentLinks:
    """Installed as ``registry.attachment_links`` by the flows service when the threshold is set."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.threshold: int = registry.config.flows.attachment_link_threshold
        self.default_quota: int = registry.config.limits.quota_bytes
        self._file_blobs: Any = None

    @property
    def file_blobs(self) -> Any:
        if self._file_blobs is None:
            from tau.files.service_tree import files_blob_store

            self._file_blobs = files_blob_store(self.registry)
        return self._file_blobs

    def url_for(self, token: str) -> str:
        return f"{self.registry.public_url}/s/{token}"

    # -- SMTP submission --------------------------------------------------------------------------
    async def rewrite_blob(self, user: Any, key: str, size: int) -> Linked | None:
        """The submitted message in blob ``key`` with big attachments linked, or None to send it as is."""
        if not self.threshold or size <= self.threshold:
            return None          # no part can be bigger than the whole message
        try:
            result = await self.registry.run_in_thread(self._rewrite, key, self.file_blobs.sync.writer)
        except Exception as exc:
            log.warn("attachment links: {user}'s message left unchanged ({exc!r})", user=user.address, exc=exc)
            await self._drop([f.key for f in getattr(exc, "found", [])])
            return None
        if result is None:
            return None
        info, found = result
        items = [(f.name, f.content_type, f.key, f.size, f.token) for f in found]
        node_ids = await self._record(user, items)
        if node_ids is None:
            await self.registry.mail_store.discard_blob(info.key)
            return None
        return Linked(self, node_ids, [self.url_for(f.token) for f in found], info.key, info.size)

    def _rewrite(self, key: str, new_file: Any) -> tuple[Any, list[mime_links.Found]] | None:
        """Worker thread: stream the message blob into a new one, attachments into file blobs."""
        mail = self.registry.blobs.sync
        chunks = mail.open(key)
        out = mail.writer()
        try:
            found = mime_links.rewrite(chunks, out.write, new_file, self.threshold, self.url_for, new_token)
            if not found:
                out.abort()
                return None
            try:
                return out.commit(), found
            except BaseException as exc:
                exc.found = found  # type: ignore[attr-defined]
                raise
        except BaseException:
            out.abort()
            raise
        finally:
            chunks.close()

    # -- POST /api/emails -------------------------------------------------------------------------
    async def link_attachments(self, user: Any, attachments: list[Any]) -> Linked | None:
        """``compose.Attachment`` list with the big ones stored and replaced by ``compose.Link``; None: unchanged.

        Bytes the API already holds are written once to the files blob store; a TauCloud file
        (``file_id``) is linked by reference to its blob, never read.
        """
        big = [i for i, a in enumerate(attachments) if self.threshold and a.size > self.threshold]
        if not big:
            return None
        items: list[tuple[str, str, str, int, str]] = []
        fresh: list[str] = []
        try:
            for i in big:
                att = attachments[i]
                name = mime_links.safe_name(att.filename)
                if att.node is not None:
                    key, size = att.node.blob_key, att.node.size
                else:
                    info = await self.file_blobs.put(att.data)
                    key, size = info.key, info.size
                    fresh.append(key)
                items.append((name, att.content_type, key, size, new_token()))
        except Exception as exc:
            log.warn("attachment links: {user}'s attachments stay attached ({exc!r})", user=user.address, exc=exc)
            await self._drop(fresh)
            return None
        node_ids = await self._record(user, items, fresh)
        if node_ids is None:
            return None
        from tau.mail.compose import Link

        entries = list(attachments)
        urls = []
        for i, (name, _, _, size, token) in zip(big, items, strict=True):
            urls.append(self.url_for(token))
            entries[i] = Link(name, mime_links.link_text(name, size, urls[-1]))
        return Linked(self, node_ids, urls, entries=entries)

    # -- shared -----------------------------------------------------------------------------------
    async def _record(self, user: Any, items: list[tuple[str, str, str, int, str]],
                      fresh: list[str] | None = None) -> list[int] | None:
        from tau.files.store import FilesError

        try:
            return list(await self.registry.db.run("flows_attachment_links", record, self.file_blobs.sync, user.id,
                                                   items, self.default_quota))
        except Exception as exc:
            if not isinstance(exc, FilesError):
                log.failure("attachment links: storing {user}'s files failed", user=user.address)
            else:
                log.warn("attachment links: {user}'s message sent unchanged: {why}", user=user.address,
                         why=exc.message)
            await self._drop([i[2] for i in items] if fresh is None else fresh)
            return None

    async def _drop(self, keys: list[str]) -> None:
        await self._clean_up("flows_attachment_cleanup", _drop, keys, "cleaning up {n} blob(s) failed")

    async def remove(self, node_ids: list[int]) -> None:
        """The message was not sent after all: its files and links go too."""
        await self._clean_up("flows_attachment_undo", _remove, node_ids, "removing {n} unsent file(s) failed")

    async def _clean_up(self, name: str, fn: Callable[..., Any], items: list[Any], failed: str) -> None:
        """Best effort: a failure is logged, not passed on to the caller sending the mail."""
        if items:
            try:
                await self.registry.db.run(name, fn, self.file_blobs.sync, items)
            except Exception:
                log.failure("attachment links: " + failed, n=len(items))
