"""Mail → cloud: ``POST /api/emails/{id}/attachments/{n}/save`` stores an attachment in TauCloud.

``n`` is the ``part`` number ``GET /api/emails/{id}`` lists for each attachment. The file lands
in ``/Mail attachments/NAME`` (or the ``path`` given), through the same file tree WebDAV and
``/api/files`` serve, so quota and name rules are theirs.
"""

from __future__ import annotations

from typing import Any

from tau.flows.common import Mail, refuse
from tau.http.errors import HttpError

FOLDER = "Mail attachments"


class _Body:
    """The sealed-upload shape ``FileTree.store_upload`` takes, for bytes we already hold."""

    def __init__(self, info: Any) -> None:
        self.info, self.size = info, info.size

    async def finish(self) -> Any:
        return self.info

    async def abort(self) -> None:
        return None


def attachment(mail: Mail, n: int) -> tuple[str, str, bytes]:
    for index, part in enumerate(mail.msg.walk()):
        if index == n and not part.is_multipart():
            name = part.get_filename() or f"attachment-{n}"
            return name.replace("/", "_").replace("\\", "_")[:200], part.get_content_type(), \
                part.get_payload(decode=True) or b""
    raise HttpError(404, "not_found", "no such attachment")


async def save_attachment(flows: Any, user: Any, mail: Mail, n: int, body: dict[str, Any]) -> dict[str, Any]:
    from tau.files.api import item, parse_path
    from tau.files.store import FilesError, make_folder

    tree = flows.files
    name, ctype, data = attachment(mail, n)
    segments = parse_path(body["path"]) if isinstance(body.get("path"), str) else [FOLDER, name]
    try:
        folder = await tree.lookup(user, segments[:-1])
        if folder.node is None and len(segments) == 2 and folder.parent is not None:
            await tree.run("files_mkdir", make_folder, folder.parent, segments[0])
        info = await tree.lookup(user, segments)
        if info.parent is None or not info.writable:
            raise HttpError(409, "no_parent", "the folder does not exist or is read-only")
        if info.limit and info.used + len(data) > info.limit:
            raise HttpError(507, "quota_exceeded", "storage quota exceeded")
        sealed = await flows.registry.run_in_thread(tree.blobs.sync.put, data)
        node = await tree.store_upload(_Body(sealed), info.parent.id, segments[-1], ctype)
    except FilesError as exc:
        raise refuse(exc)
    return item(node, segments)
