"""Issue 13 item 8: every HTML page of tau carries the strict CSP and no inline script.

The pages: the admin dashboard, the OAuth consent page (form and error page), the call page and
the DAV folder index (tests/files/test_user_content.py). The policy must forbid inline script
(``script-src 'self'`` only), framing, ``<base>`` and foreign form targets; the markup must have no
inline ``<script>`` body, no ``on*=`` handler and no ``style=`` attribute, and any inline
``<style>`` must be allowed by a hash in ``style-src`` (so the page still looks right).
"""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from tests.support.http import HttpResponse

REQUIRED = {"default-src": "'none'", "script-src": "'self'", "frame-ancestors": "'none'", "base-uri": "'none'",
            "form-action": "'self'"}


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self.handlers: list[str] = []
        self._in: str | None = None
        self._attrs: dict[str, str | None] = {}
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handlers += [f"{tag} {k}" for k, _ in attrs if k.startswith("on") or k == "style"]
        self.handlers += [f"{tag} {k}={v}" for k, v in attrs if v and v.strip().lower().startswith("javascript:")]
        if tag in ("script", "style"):
            self._in, self._attrs, self._text = tag, dict(attrs), ""

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in == "script":
            self.scripts.append((self._attrs, self._text))
        elif tag == self._in == "style":
            self.styles.append(self._text)
        if tag == self._in:
            self._in = None


def policy(response: HttpResponse) -> dict[str, str]:
    raw = response.header("content-security-policy") or ""
    out = {}
    for part in raw.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            out[name.lower()] = value.strip()
    return out


def assert_strict_page(response: HttpResponse) -> None:
    assert (response.header("content-type") or "").startswith("text/html"), response.headers
    csp = policy(response)
    for name, value in REQUIRED.items():
        assert csp.get(name) == value, (name, csp)
    assert "unsafe" not in (response.header("content-security-policy") or ""), csp
    assert response.header("referrer-policy") == "no-referrer"
    assert response.header("x-content-type-options") == "nosniff"
    markup = Markup()
    markup.feed(response.body.decode("utf-8"))
    for attrs, text in markup.scripts:
        assert attrs.get("src") and not text.strip(), (attrs, text[:200])  # external files only
    assert not markup.handlers, markup.handlers
    style_src = csp.get("style-src", csp["default-src"])
    for css in markup.styles:
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in style_src, ("inline <style> not allowed by the CSP", digest, style_src)


@pytest.fixture
def pages(admin: Any) -> Any:
    from tau.connect import api
    from tau.connect.service import build

    calls, _hub, _resource = build(admin.registry)
    api.register(admin.host.http, calls)
    return admin


def test_admin_dashboard_is_a_strict_page_with_external_assets(pages: Any) -> None:
    for path in ("/admin", "/admin/"):
        page = pages.get(path)
        assert page.status == 200
        assert_strict_page(page)
        assert b'src="/admin/app.js"' in page.body and b'href="/admin/app.css"' in page.body
    for asset, ctype in (("/admin/app.js", "text/javascript"), ("/admin/app.css", "text/css")):
        r = pages.get(asset)
        assert r.status == 200 and r.header("content-type").startswith(ctype)
        assert r.header("x-content-type-options") == "nosniff"
    script = pages.get("/admin/app.js").body
    assert b"sessionStorage" not in script and b"localStorage" not in script and b"document.cookie" not in script


def test_every_admin_module_and_the_invite_page_follow_the_same_rules(pages: Any) -> None:
    """The page's ES modules (and the invite page's script): served as JavaScript, never HTML from
    strings, no readable token storage; the invite page is as strict as the dashboard."""
    from tau.admin.dashboard import ASSETS

    modules = [name for name in ASSETS if name.endswith(".js")]
    assert {"app.js", "lib.js", "users.js", "domains.js", "oauth.js", "events.js", "invite.js"} <= set(modules)
    for name in modules:
        r = pages.get(f"/admin/{name}")
        assert r.status == 200 and r.header("content-type").startswith("text/javascript"), name
        for banned in (b"innerHTML", b"outerHTML", b"insertAdjacentHTML", b"document.write", b"eval(",
                       b"sessionStorage", b"localStorage", b"document.cookie"):
            assert banned not in r.body, (name, banned)
    imported = set(re.findall(rb'from "\./([a-z]+\.js)"', pages.get("/admin/app.js").body))
    assert {m.decode() for m in imported} == {"lib.js", "users.js", "domains.js", "oauth.js", "events.js"}
    page = pages.get("/admin")
    assert b'<script type=module src="/admin/app.js">' in page.body
    invite = pages.get("/invite")
    assert invite.status == 200 and invite.header("cache-control") == "no-store"
    assert_strict_page(invite)
    assert b'src="/admin/invite.js"' in invite.body and b"token" not in invite.body


def test_consent_pages_are_strict(pages: Any) -> None:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 43).digest()).rstrip(b"=").decode()
    form = pages.get("/oauth2/authorize?response_type=code&client_id=app&redirect_uri=http%3A%2F%2F127.0.0.1%3A5555"
                     f"%2Fcb&code_challenge={challenge}&code_challenge_method=S256&state=s")
    assert form.status == 200 and b"name=password" in form.body
    assert_strict_page(form)
    error = pages.get("/oauth2/authorize?client_id=app&redirect_uri=https%3A%2F%2Fevil.example%2F")
    assert error.status == 400
    assert_strict_page(error)


def test_call_page_is_strict(pages: Any) -> None:
    page = pages.get("/call/some-call-id")
    assert page.status == 200
    assert_strict_page(page)
    csp = policy(page)
    assert "mediastream:" in csp["media-src"] and "'self'" in csp["connect-src"]


def test_pages_cannot_be_framed_and_json_is_never_sniffed(pages: Any) -> None:
    assert pages.get("/admin").header("x-frame-options") == "DENY"
    for path in ("/api/health", "/api/admin/users", "/no/such/path"):
        assert pages.get(path).header("x-content-type-options") == "nosniff", path


def test_every_html_route_is_covered() -> None:
    """A new HTML page must be added here (and get the strict headers): grep the sources for it."""
    from pathlib import Path

    import tau

    root = Path(tau.__file__).parent
    html_sources = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                          if re.search(r"[\"']text/html;", p.read_text(encoding="utf-8")))
    # the web app's shell and the share pages: tests/web/test_web_server.py; web/mailview.py serves a
    # received message's sanitised HTML under its own sandboxing policy (tau.web.sanitize), tested there
    assert html_sources == ["admin/dashboard.py", "connect/api.py", "dav/get.py", "files/sharepage.py",
                            "http/consent.py", "web/mailview.py", "web/pages.py"], html_sources
