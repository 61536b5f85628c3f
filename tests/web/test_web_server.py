"""Issue 19, the server side of the web app, at the HTTP level (fast, both engines).

The shell page runs no inline script and loads versioned assets; the app's REST calls work with
the session cookie and, when they change anything, only with the session's CSRF token; a
message's HTML comes back sanitised (no script, no handlers, no ``javascript:``, remote images
only when asked) inside a sandboxing policy; attachments download as inert user content; share
links answer browsers with escaped HTML pages and API clients with JSON or bytes.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

from tests.admin.test_page_headers import assert_strict_page
from tests.support.http import assert_json_error
from tests.support.mail_api import ALICE, BOB

from .conftest import Web

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
HOSTILE = ('<p>Dear customer</p><script>window.top.pwned=1</script><img src=x onerror="alert(1)">'
           '<img src="https://tracker.example/pixel.png?u=alice"><a href="javascript:alert(2)">pay</a>'
           '<div style="background:url(https://tracker.example/bg.png)">styled</div>'
           '<iframe src="https://evil.example/"></iframe><form action="https://evil.example/"><input></form>'
           '<svg onload="alert(3)"></svg><a href="https://ok.example/">ok link</a>')


def csp(response) -> dict[str, str]:
    return {d.strip().split(" ", 1)[0]: (d.strip().split(" ", 1) + [""])[1]
            for d in response.header("Content-Security-Policy").split(";") if d.strip()}


def test_shell_page_has_no_inline_script_and_loads_the_shell_module(web: Web) -> None:
    r = web.client.get("/")
    assert r.status == 200
    assert_strict_page(r)
    policy = csp(r)
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and r.header("Cache-Control") == "no-store"
    scripts = re.findall(rb"<script\b([^>]*)>(.*?)</script>", r.body, re.S)
    assert scripts and all(b"src=" in attrs and not body.strip() for attrs, body in scripts)
    version = re.search(rb'src="/app/shell\.js\?v=([0-9a-f]+)"', r.body).group(1).decode()
    versioned = web.client.get(f"/app/shell.js?v={version}")
    assert versioned.status == 200 and versioned.header("Content-Type").startswith("text/javascript")
    assert "immutable" in versioned.header("Cache-Control")
    plain = web.client.get("/app/shell.js")
    assert plain.header("Cache-Control") == "no-cache" and plain.body == versioned.body
    again = web.client.get("/app/shell.js", headers={"If-None-Match": plain.header("ETag")})
    assert again.status == 304 and again.body == b""


def test_every_view_is_a_module_and_nothing_else_is_served(web: Web) -> None:
    for name in ("mail", "calendar", "files", "contacts"):
        r = web.client.get(f"/app/views/{name}.js")
        assert r.status == 200 and b"export async function mount(root" in r.body, name
    for path in ("/app/views/nope.js", "/app/index.html", "/app/..%2fpages.py", "/app/views/..%2f..%2fservice.py"):
        assert web.client.get(path).status == 404, path


def test_the_session_cookie_reads_mail_but_changes_nothing_without_csrf(web: Web) -> None:
    web.send(user=BOB, to=[ALICE], subject="hello", text="hi")
    cookie, csrf = web.session()
    listing = web.browser("GET", "/api/emails?mailbox=INBOX", cookie)
    assert listing.status == 200 and listing.json()["items"][0]["subject"] == "hello"
    boxes = {b["name"]: b for b in web.browser("GET", "/api/mailboxes", cookie).json()["items"]}
    assert boxes["INBOX"]["unread"] == 1 and boxes["INBOX"]["messages"] == 1 and "Sent" in boxes
    message = listing.json()["items"][0]["id"]
    for token in (None, "guess", ""):
        r = web.browser("PATCH", f"/api/emails/{message}", cookie, token, {"read": True})
        assert_json_error(r, 403, "csrf_failed")
        r = web.browser("POST", "/api/emails", cookie, token, {"to": [BOB], "subject": "forged", "text": "x"})
        assert_json_error(r, 403, "csrf_failed")
    assert web.browser("PATCH", f"/api/emails/{message}", cookie, csrf, {"read": True}).status == 200
    assert web.browser("POST", "/api/emails", cookie, csrf, {"to": [BOB], "subject": "real", "text": "x"}).status == 202
    assert [i["subject"] for i in web.items(user=BOB)] == ["real"]
    assert web.browser("GET", "/api/mailboxes", "tau_session=forged").status == 401


def test_the_session_cookie_uploads_a_file_only_with_csrf(web: Web) -> None:
    cookie, csrf = web.session()
    body = b"uploaded from the Files view"
    hdrs = {"Cookie": cookie, "Content-Type": "text/plain"}
    for token in (None, "guess"):
        extra = {} if token is None else {"X-CSRF-Token": token}
        r = web.client.request("POST", "/api/files?path=/forged.txt", body, headers={**hdrs, **extra})
        assert_json_error(r, 403, "csrf_failed")
    r = web.client.request("POST", "/api/files?path=/note.txt", body, headers={**hdrs, "X-CSRF-Token": csrf})
    assert r.status == 201, r.body
    listing = web.browser("GET", "/api/files?path=/", cookie).json()
    names = {item["name"] for item in listing["items"]}
    assert "note.txt" in names and "forged.txt" not in names


def _hostile(web: Web) -> str:
    web.send(user=BOB, to=[ALICE], subject="<b>bill</b>", text="plain", html=HOSTILE)
    return web.items()[0]["id"]


def test_message_html_is_sanitised_on_the_server(web: Web) -> None:
    message = _hostile(web)
    cookie, _ = web.session()
    r = web.browser("GET", f"/api/web/emails/{message}/body", cookie)
    assert r.status == 200 and r.header("Content-Type").startswith("text/html")
    body = r.body.decode().lower()
    for bad in ("<script", "onerror", "onload", "javascript:", "tracker.example", "<iframe", "<form", "evil.example"):
        assert bad not in body, bad
    assert "dear customer" in body and "styled" in body and 'href="https://ok.example/"' in body
    assert 'rel="noopener noreferrer nofollow"' in body and 'target="_blank"' in body
    policy = csp(r)
    assert "script-src" not in policy and policy["default-src"] == "'none'"
    assert policy["sandbox"] == "allow-popups allow-popups-to-escape-sandbox"  # no allow-scripts, no same-origin
    assert policy["img-src"] == "data:" and policy["frame-ancestors"] == "'self'"


def test_remote_images_load_only_when_asked(web: Web) -> None:
    message = _hostile(web)
    cookie, _ = web.session()
    r = web.browser("GET", f"/api/web/emails/{message}/body?images=1", cookie)
    body = r.body.decode()
    assert 'src="https://tracker.example/pixel.png?u=alice"' in body and "url(https://tracker.example/bg.png)" in body
    assert "https:" in csp(r)["img-src"]
    assert "<script" not in body and "onerror" not in body and "javascript:" not in body


def test_message_html_is_only_for_its_owner(web: Web) -> None:
    message = _hostile(web)
    cookie, _ = web.session(BOB)
    assert_json_error(web.browser("GET", f"/api/web/emails/{message}/body", cookie), 404, "not_found")
    assert web.client.get(f"/api/web/emails/{message}/body").status == 401


def test_text_only_mail_is_escaped_in_the_frame(web: Web) -> None:
    web.send(user=BOB, to=[ALICE], subject="t", text="<script>alert(1)</script> & more")
    cookie, _ = web.session()
    r = web.browser("GET", f"/api/web/emails/{web.items()[0]['id']}/body", cookie)
    assert b"&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in r.body and b"<script" not in r.body


def test_attachments_download_as_inert_files(web: Web) -> None:
    page = b"<html><script>alert(document.cookie)</script></html>"
    web.send(user=BOB, to=[ALICE], subject="files", text="see attached", attachments=[
        {"filename": "<img src=x onerror=alert(1)>.html", "content_type": "text/html",
         "content_base64": base64.b64encode(page).decode()}])
    message = web.api("GET", f"/api/emails/{web.items()[0]['id']}").json()
    (part,) = message["attachments"]
    cookie, _ = web.session()
    r = web.browser("GET", f"/api/emails/{message['id']}/attachments/{part['part']}", cookie)
    assert r.status == 200 and r.body == page
    assert r.header("Content-Type") == "application/octet-stream"
    assert r.header("Content-Disposition").startswith("attachment")
    assert r.header("X-Content-Type-Options") == "nosniff" and "sandbox" in r.header("Content-Security-Policy")
    assert web.browser("GET", f"/api/emails/{message['id']}/attachments/99", cookie).status == 404
    other, _ = web.session(BOB)
    assert web.browser("GET", f"/api/emails/{message['id']}/attachments/{part['part']}", other).status == 404


# -- share pages -------------------------------------------------------------------------------

NAME = '<img src=x onerror="alert(1)">q3 & co.txt'


def _share(web: Web, path: str, data: bytes = b"numbers", **extra: object) -> str:
    r = web.api("POST", f"/api/files?path={quote(path)}", raw=data)
    assert r.status == 201, r.body
    r = web.api("POST", "/api/shares", {"file_id": r.json()["id"], **extra})
    assert r.status == 201, r.body
    return r.json()["token"]


def test_a_browser_gets_an_escaped_page_and_an_api_client_the_bytes(web: Web) -> None:
    token = _share(web, "/" + NAME)
    page = web.client.get(f"/s/{token}", headers={"Accept": HTML})
    assert page.status == 200
    assert_strict_page(page)
    assert "Accept" in page.header("Vary")
    text = page.body.decode()
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;q3 &amp; co.txt" in text and "<img" not in text
    assert "<script" not in text and "script-src 'self'" in page.header("Content-Security-Policy")
    assert "7 bytes" in text and f"/s/{token}?download=1" in text
    raw = web.client.get(f"/s/{token}")
    assert raw.body == b"numbers" and raw.header("Content-Disposition")
    download = web.client.get(f"/s/{token}?download=1", headers={"Accept": HTML})
    assert download.body == b"numbers"


def test_missing_links_are_a_404_page_for_browsers_and_json_for_clients(web: Web) -> None:
    page = web.client.get("/s/nope", headers={"Accept": HTML})
    assert page.status == 404 and b"Link not found" in page.body
    assert_strict_page(page)
    assert_json_error(web.client.get("/s/nope"), 404, "not_found")


def test_folder_links_list_their_files_for_both(web: Web) -> None:
    assert web.api("POST", "/api/files?path=/shared&type=folder").status == 201
    r = web.api("POST", "/api/files?path=" + quote("/shared/" + NAME), raw=b"abc")
    assert r.status == 201, r.body
    listing = web.api("GET", "/api/files?path=/").json()["items"]
    folder_id = next(i["id"] for i in listing if i["name"] == "shared")
    token = web.api("POST", "/api/shares", {"file_id": folder_id}).json()["token"]
    page = web.client.get(f"/s/{token}", headers={"Accept": HTML})
    text = page.body.decode()
    assert page.status == 200 and "q3 &amp; co.txt" in text and "<img" not in text and "download=zip" in text
    data = web.client.get(f"/s/{token}", headers={"Accept": "application/json"}).json()
    assert [i["name"] for i in data["items"]] == [NAME]


def test_password_links_show_a_form_then_remember_the_right_password(web: Web) -> None:
    token = _share(web, "/secret.txt", password="open sesame")
    form = web.client.get(f"/s/{token}", headers={"Accept": HTML})
    assert form.status == 401 and b"type=password" in form.body
    assert_strict_page(form)
    assert form.header("WWW-Authenticate") is None  # no native Basic prompt in front of the form
    wrong = web.client.get(f"/s/{token}?password=nope", headers={"Accept": HTML})
    assert wrong.status == 401 and b"Wrong password" in wrong.body
    right = web.client.get(f"/s/{token}?password=open%20sesame", headers={"Accept": HTML})
    assert right.status == 303 and right.header("Location") == f"/s/{token}"
    (cookie,) = [v for k, v in right.raw_headers if k.lower() == "set-cookie"]
    assert "HttpOnly" in cookie and f"Path=/s/{token}" in cookie
    jar = cookie.split(";")[0]
    page = web.client.get(f"/s/{token}", headers={"Accept": HTML, "Cookie": jar})
    assert page.status == 200 and b"secret.txt" in page.body
    assert web.client.get(f"/s/{token}?download=1", headers={"Cookie": jar}).body == b"numbers"
    forged = jar.split("=", 1)[0] + "=99999999999.00"
    assert web.client.get(f"/s/{token}", headers={"Accept": HTML, "Cookie": forged}).status == 401
    other = _share(web, "/other.txt", password="other")
    assert web.client.get(f"/s/{other}", headers={"Accept": HTML, "Cookie": jar}).status == 401
    api = web.client.get(f"/s/{token}")
    assert_json_error(api, 401, "password_required")
    assert api.header("WWW-Authenticate")
