"""The web app's cookie session on the trash, versions and resumable uploads (issue 19): reads
need only the cookie, every change also the CSRF token; a token without the ``files`` scope is
refused on all of them."""

from __future__ import annotations

import json

from tests.support.http import assert_json_error
from tests.support.mail_api import ALICE
from tests.web.conftest import Web

JSON = {"Content-Type": "application/json"}


def test_trash_changes_need_the_csrf_token(web: Web) -> None:
    cookie, csrf = web.session()
    r = web.client.request("POST", "/api/files?path=/gone.txt", b"bye",
                           headers={"Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": "text/plain"})
    assert r.status == 201, r.body
    assert web.browser("DELETE", f"/api/files/{r.json()['id']}", cookie, csrf).status == 204
    [item] = web.browser("GET", "/api/trash", cookie).json()["items"]
    for method, path in (("POST", f"/api/trash/{item['id']}/restore"), ("DELETE", f"/api/trash/{item['id']}"),
                         ("DELETE", "/api/trash")):
        assert_json_error(web.browser(method, path, cookie), 403, "csrf_failed")
        assert_json_error(web.browser(method, path, cookie, "guess"), 403, "csrf_failed")
    assert web.browser("POST", f"/api/trash/{item['id']}/restore", cookie, csrf).status == 200


def test_version_restore_needs_the_csrf_token(web: Web) -> None:
    cookie, csrf = web.session()
    hdrs = {"Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": "text/plain"}
    fid = web.client.request("POST", "/api/files?path=/v.txt", b"one", headers=hdrs).json()["id"]
    web.client.request("POST", "/api/files?path=/v.txt", b"two", headers=hdrs)
    [v] = web.browser("GET", f"/api/files/{fid}/versions", cookie).json()["items"]
    path = f"/api/files/{fid}/versions/{v['id']}/restore"
    assert_json_error(web.browser("POST", path, cookie), 403, "csrf_failed")
    assert web.browser("POST", path, cookie, csrf).status == 200


def test_chunked_upload_needs_the_csrf_token_for_each_change(web: Web) -> None:
    cookie, csrf = web.session()
    body = json.dumps({"path": "/big.bin", "size": 6}).encode()
    r = web.client.request("POST", "/api/uploads", body, headers={"Cookie": cookie, **JSON})
    assert_json_error(r, 403, "csrf_failed")
    r = web.client.request("POST", "/api/uploads", body, headers={"Cookie": cookie, "X-CSRF-Token": csrf, **JSON})
    assert r.status == 201, r.body
    url = r.json()["url"]
    chunk = {"Cookie": cookie, "Content-Range": "bytes 0-5/6"}
    assert_json_error(web.client.request("PUT", url, b"abcdef", headers=chunk), 403, "csrf_failed")
    assert web.browser("GET", url, cookie).json()["offset"] == 0
    r = web.client.request("PUT", url, b"abcdef", headers={**chunk, "X-CSRF-Token": csrf})
    assert r.status == 201 and r.json()["path"] == "/big.bin"


def test_a_token_without_the_files_scope_is_refused(web: Web) -> None:
    token = web.registry.tokens.issue(ALICE, scope="calendar")
    for method, path in (("GET", "/api/trash"), ("DELETE", "/api/trash"), ("POST", "/api/trash/1/restore"),
                         ("GET", "/api/files/1/versions"), ("POST", "/api/uploads"), ("GET", "/api/uploads/x"),
                         ("PUT", "/api/uploads/x?offset=0")):
        r = web.client.request(method, path, b"{}", token=token, headers=JSON)
        assert_json_error(r, 403, "insufficient_scope")
