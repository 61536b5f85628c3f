"""TauCloud files for mail to attach (``compose.FileSource``): installed by the files service as
``registry.attachment_files``, so mail reaches stored files without importing ``tau.files``."""

from __future__ import annotations

from typing import Any

from tau.files import lookup
from tau.files.store import Node


class AttachmentFiles:
    def __init__(self, registry: Any) -> None:
        self.registry = registry

    async def readable_file(self, user: Any, file_id: int) -> Node | None:
        """A file (not a folder, with content) ``user`` may read: its own tree or a share."""
        found = await self.registry.db.run("mail_attach_file", lookup.locate, user.id, file_id, readonly=True)
        if found is None or found[0].is_folder or not found[0].blob_key:
            return None
        return found[0]
