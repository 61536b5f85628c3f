"""The webmail's server side at the HTTP level (fast, both engines): the app's JavaScript and CSS
stay under the issue's 300 KB, and the drafts and key look-ups the compose form calls take the
session cookie, drafts only with the CSRF token."""

from __future__ import annotations

from tau.web.pages import load_assets
from tests.support.http import assert_json_error
from tests.support.mail_api import BOB

from .conftest import Web

BUDGET = 300 * 1024


def test_the_apps_javascript_and_css_stay_under_300_kb() -> None:
    code = {name: data for name, data in load_assets().items() if name.endswith((".js", ".css"))}
    assert "views/mailcompose.js" in code
    assert sum(map(len, code.values())) < BUDGET, {n: len(d) for n, d in code.items()}


def test_drafts_and_key_lookups_take_the_session_cookie_drafts_only_with_csrf(web: Web) -> None:
    cookie, csrf = web.session()
    draft = {"to": BOB, "subject": "later", "text": "x"}
    assert_json_error(web.browser("POST", "/api/emails/drafts", cookie, "guess", draft), 403, "csrf_failed")
    saved = web.browser("POST", "/api/emails/drafts", cookie, csrf, draft)
    assert saved.status == 201 and saved.json()["mailbox"] == "Drafts"
    known = web.browser("GET", f"/api/keys/pgp/known?addresses={BOB}", cookie)
    assert known.status == 200 and known.json()["addresses"] == {BOB: False}
