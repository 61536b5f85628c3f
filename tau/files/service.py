"""TauCloud's ``install``: WebDAV at ``/dav/files/``, REST ``/api/files`` and ``/api/shares``,
public links at ``/s/TOKEN`` — one file tree behind all of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.dav.put import UploadBody
from tau.dav.server import install_sinks
from tau.files.admission import dav_admission
from tau.files.service_tree import FileTree

if TYPE_CHECKING:
    from tau.registry import Registry

DAV_PREFIX = "/dav/files"


def install(registry: Registry, host: Any) -> None:
    tree, server = registry.files_tree, registry.files_dav
    blobs = tree.blobs
    http = host.http
    http.mount(DAV_PREFIX, server, auth="any", body_limit=None, scope="files")
    install_sinks(http.site, DAV_PREFIX + "/", lambda request, length: UploadBody(request, length, blobs.writer),
                  auth="any")
    http.site.add_body_admission(DAV_PREFIX + "/", {"PUT"}, dav_admission(tree, DAV_PREFIX))
    from tau.files import api, shares, trashapi, uploadapi

    files_api = api.register(registry, http, tree)
    trashapi.register(registry, http, tree, files_api)
    uploadapi.register(registry, http, tree)
    shares.register(registry, http, tree)
    host.add_service(_orphan_collector(registry, tree))
    host.add_service(_expiry(registry, tree))
    registry.services["files"] = "ok"


GC_INTERVAL = 3600.0


def _orphan_collector(registry: Registry, tree: FileTree) -> Any:
    """Hourly: blobs left behind when a user (and, by cascade, their files) was deleted."""
    from tau.files.blobrefs import collect_orphans
    from tau.net.periodic import periodic

    async def collect() -> int:
        return int(await tree.run("files_gc", collect_orphans, tree.blobs.sync))

    return periodic(registry, "files-gc", GC_INTERVAL, collect, "removed {n} orphaned file blobs",
                    "file blob collection failed")


EXPIRY_INTERVAL = 3600.0


def _expiry(registry: Registry, tree: FileTree) -> Any:
    """Hourly: trash older than ``[files] trash_days`` and uploads idle past ``upload_expiry`` go."""
    from tau.files import trashstore, uploadstore
    from tau.net.periodic import periodic

    files = registry.config.files

    async def expire() -> int:
        done = 0
        if files.trash_days > 0:
            done += int(await tree.run("files_trash_expire", trashstore.expire, tree.blobs.sync,
                                       files.trash_days * 86400))
        done += int(await tree.run("files_upload_expire", uploadstore.expire, tree.blobs.sync, files.upload_expiry))
        return done

    return periodic(registry, "files-expiry", EXPIRY_INTERVAL, expire, "expired {n} trash items and uploads",
                    "file trash and upload expiry failed")
