"""tau web's Files view, trash, versions and resumable uploads (issue 19) in headless Chromium
against a real daemon: a file deleted in the browser is in the Trash and, restored, listed over
WebDAV again; a file overwritten over WebDAV shows its older version, which the browser restores;
a large upload goes in chunks, survives a dropped request and arrives byte-exact."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import TauDaemon
from tests.web.test_views_chromium import ALICE, assert_inert, browser, daemon, dav, open_view, shoot

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.e2e
__all__ = ["browser", "daemon"]  # the module's daemon and browser fixtures
WAIT = 15_000


def _listed(d: TauDaemon, name: str) -> bool:
    query = b'<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>'
    status, body = dav(d, "PROPFIND", f"/dav/files/{ALICE}/", query,
                       headers={"Depth": "1", "Content-Type": "application/xml"})
    assert status == 207
    return f"/{name}<".encode() in body


def test_delete_goes_to_trash_and_restore_brings_it_back_for_webdav(daemon: TauDaemon, browser: Any) -> None:
    dav(daemon, "PUT", f"/dav/files/{ALICE}/minutes.txt", b"meeting minutes")
    page = open_view(browser, daemon, "files")
    page.get_by_role("button", name="Delete minutes.txt").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_role("status").filter(has_text="Deleted minutes.txt").wait_for(timeout=WAIT)
    assert not _listed(daemon, "minutes.txt")
    page.get_by_role("button", name="Trash", exact=True).click()
    page.get_by_role("row").filter(has_text="minutes.txt").filter(has_text="from /minutes.txt").wait_for(timeout=WAIT)
    shoot(page, "files-trash-1280")
    page.get_by_role("button", name="Restore minutes.txt").click()
    page.get_by_role("status").filter(has_text="Restored minutes.txt").wait_for(timeout=WAIT)
    assert _listed(daemon, "minutes.txt")
    assert dav(daemon, "GET", f"/dav/files/{ALICE}/minutes.txt") == (200, b"meeting minutes")
    assert_inert(page)
    page.context.close()


def test_version_made_over_webdav_is_restored_in_browser(daemon: TauDaemon, browser: Any) -> None:
    dav(daemon, "PUT", f"/dav/files/{ALICE}/budget.csv", b"old,numbers\n")
    dav(daemon, "PUT", f"/dav/files/{ALICE}/budget.csv", b"new,numbers,changed\n")
    page = open_view(browser, daemon, "files")
    page.get_by_role("button", name="Versions budget.csv").click()
    dialog = page.get_by_role("dialog", name="Versions of budget.csv")
    dialog.get_by_role("list", name="Versions").get_by_text("12 B").wait_for(timeout=WAIT)
    shoot(page, "files-versions-1280")
    dialog.get_by_role("button", name="Restore version from").first.click()
    page.get_by_role("status").filter(has_text="Restored the version of budget.csv").wait_for(timeout=WAIT)
    assert dav(daemon, "GET", f"/dav/files/{ALICE}/budget.csv") == (200, b"old,numbers\n")
    page.context.close()


def test_large_upload_is_chunked_resumes_after_a_network_error_and_arrives_exact(
        daemon: TauDaemon, browser: Any, tmp_path: Path) -> None:
    payload = os.urandom(12 * 1024 * 1024 + 4321)  # over the 8 MiB threshold: four chunks
    source = tmp_path / "footage.bin"
    source.write_bytes(payload)
    page = open_view(browser, daemon, "files")
    dropped: list[str] = []

    def flaky(route: Any) -> None:
        """The second chunk's first attempt fails as a network error would."""
        request = route.request
        if request.method == "PUT" and not dropped and request.headers.get("content-range", "").startswith(
                f"bytes {4 * 1024 * 1024}-"):
            dropped.append(request.url)
            route.abort("connectionreset")
            return
        route.continue_()

    page.route("**/api/uploads/*", flaky)
    page.get_by_label("Upload files").set_input_files(str(source))
    page.get_by_role("status").filter(has_text="Uploaded footage.bin").wait_for(timeout=60_000)
    assert dropped, "the second chunk was never sent"
    status, body = dav(daemon, "GET", f"/dav/files/{ALICE}/footage.bin")
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    page.context.close()
