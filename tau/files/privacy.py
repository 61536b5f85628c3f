"""The user's file tree in a privacy export (as files) and erasure (the blobs the account's
``ON DELETE CASCADE`` left unreferenced); see :mod:`tau.privacy`."""

from __future__ import annotations

import tempfile
from typing import Any

from tau.files import privacy_store as rows
from tau.files.blobrefs import collect_orphans
from tau.privacy import ExportContext, PrivacyHook, PurgeContext, safe_name


def _store(blobs: Any) -> Any:
    return blobs.store(blobs.keys.derive("files:blob-address"))


def export(ctx: ExportContext) -> None:
    files = _store(ctx.blobs)
    nodes = ctx.db.run("nodes", rows.nodes, ctx.user.id, readonly=True)
    by_id = {n[0]: n for n in nodes}

    def path_of(node: tuple[Any, ...] | None) -> str:
        parts = []
        while node is not None and node[1] is not None:
            parts.append(safe_name(node[2]))
            node = by_id.get(node[1])
        return "/".join(reversed(parts))

    ctx.counts["files"] = 0
    for node in nodes:
        if node[3] != "folder" and node[4]:
            with tempfile.TemporaryFile() as fh:
                for chunk in files.open(node[4]):
                    fh.write(chunk)
                ctx.add_file(f"files/{path_of(node)}", fh, int(node[5]))
            ctx.counts["files"] += 1


def collect(ctx: PurgeContext, state: Any) -> None:
    files = _store(ctx.blobs)
    deleted = 0
    while True:
        n = ctx.db.run("purge_file_blobs", collect_orphans, files)
        deleted += n
        if n < 1000:
            break
    ctx.counts["file_blobs"] = deleted


HOOK = PrivacyHook("files", export=export, collect=collect)
