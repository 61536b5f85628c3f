"""Issue 13 item 2: a token reaches only what its scopes name (RFC 6750 §3.1 ``insufficient_scope``).

Every service installed in-process on SQLite and PostgreSQL; the attacks go through HTTP: a token
granted ``scope=calendar`` tries mail, files, chat, calls, DAV and the admin API.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tau.auth import scopes
from tau.http.router import Router
from tests.support.http import HttpResponse, assert_json_error
from tests.support.suite import PASSWORD, Suite, make_suite

ADMIN, BOB = "alice@example.test", "bob@example.test"
#: (method, path, scope it needs): one route of each service
ELSEWHERE = [("GET", "/api/emails", "mail"), ("GET", "/api/keys/pgp", "mail"), ("GET", "/api/files", "files"),
             ("GET", "/api/shares", "files"), ("GET", "/api/conversations", "chat"),
             ("GET", "/api/messages", "chat"), ("GET", "/api/keys", "chat"), ("GET", "/api/calls", "calls"),
             ("GET", "/api/admin/users", "admin"), ("GET", "/api/admin/queue", "admin"),
             ("GET", "/api/account/2fa", "account")]


@pytest.fixture
def suite(tmp_path: Path, db_url: str) -> Iterator[Suite]:
    s = make_suite(tmp_path / "tau", db_url, {ADMIN: True, BOB: False})
    yield s
    s.registry.db.close()


def assert_insufficient(r: HttpResponse, scope: str) -> None:
    body = assert_json_error(r, 403, "insufficient_scope")
    challenge = r.header("www-authenticate") or ""
    assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge, challenge
    assert f'scope="{scope}"' in challenge, challenge
    assert body["scope"] == scope


def claims(token: str) -> dict[str, Any]:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})


def test_a_calendar_token_reads_calendars_and_nothing_else(suite: Suite) -> None:
    token = suite.token(ADMIN, scope="calendar")  # even an administrator's
    assert claims(token)["scope"] == "calendar"
    assert suite.get("/api/events", token).status == 200
    assert suite.get("/api/me", token).json()["address"] == ADMIN  # any token: whom it is for
    for method, path, scope in ELSEWHERE:
        assert_insufficient(suite.request(method, path, token=token), scope)
    assert_insufficient(suite.request("POST", "/api/emails", b'{"to": ["bob@example.test"], "subject": "x"}',
                                      token=token, headers={"Content-Type": "application/json"}), "mail")
    assert_insufficient(suite.request("POST", "/api/calls", b"{}", token=token,
                                      headers={"Content-Type": "application/json"}), "calls")
    # a flow joining two services needs both
    assert_insufficient(suite.request("POST", "/api/emails/1/event", b"", token=token), "mail calendar")


def test_dav_trees_need_their_scope(suite: Suite) -> None:
    mail_only = suite.token(BOB, scope="mail")
    files = suite.token(BOB, scope="files")
    calendar = suite.token(BOB, scope="calendar")
    propfind = {"Depth": "0"}
    assert_insufficient(suite.request("PROPFIND", f"/dav/files/{BOB}/", token=calendar, headers=propfind), "files")
    assert_insufficient(suite.request("PROPFIND", f"/dav/calendars/{BOB}/", token=files, headers=propfind),
                        "calendar")
    assert_insufficient(suite.request("PROPFIND", "/dav/", token=mail_only, headers=propfind), "calendar")
    assert suite.request("PROPFIND", f"/dav/files/{BOB}/", token=files, headers=propfind).status == 207
    assert suite.request("PROPFIND", f"/dav/calendars/{BOB}/", token=calendar, headers=propfind).status == 207


def test_an_upload_without_the_scope_is_refused_before_its_body_is_stored(suite: Suite) -> None:
    token = suite.token(BOB, scope="calendar")
    r = suite.request("PUT", f"/dav/files/{BOB}/evil.txt", b"x" * 1000, token=token)
    assert_insufficient(r, "files")
    files = suite.token(BOB, scope="files")
    assert suite.request("GET", f"/dav/files/{BOB}/evil.txt", token=files).status == 404
    assert suite.request("PUT", f"/dav/files/{BOB}/fine.txt", b"ok", token=files).status == 201


def test_basic_auth_reaches_dav_but_never_admin(suite: Suite) -> None:
    basic = "Basic " + base64.b64encode(f"{ADMIN}:{PASSWORD}".encode()).decode()
    assert suite.request("PROPFIND", f"/dav/files/{ADMIN}/", headers={"Authorization": basic,
                                                                       "Depth": "0"}).status == 207
    assert suite.request("PROPFIND", f"/dav/calendars/{ADMIN}/", headers={"Authorization": basic,
                                                                           "Depth": "0"}).status == 207
    assert scopes.ADMIN not in scopes.basic_default()
    # the admin API takes only Bearer tokens: Basic is not even tried there
    assert_json_error(suite.request("GET", "/api/admin/users", headers={"Authorization": basic}), 401)


def test_admin_needs_the_role_and_the_scope(suite: Suite) -> None:
    # bob asks for admin: he is no administrator, so he does not get it
    body = suite.tokens(BOB, scope="admin mail")
    assert body["scope"] == "mail" and claims(body["access_token"])["scope"] == "mail"
    assert_json_error(suite.get("/api/admin/users", body["access_token"]), 403, "forbidden")
    # a token that does carry admin (as if minted for him) still needs the role
    forged_scope = suite.registry.tokens.issue(BOB, scope="admin mail", session="f" * 32)
    assert_json_error(suite.get("/api/admin/users", forged_scope), 403, "forbidden")
    # the administrator with a narrower token is refused; with the admin scope she is served
    assert_insufficient(suite.get("/api/admin/users", suite.token(ADMIN, scope="mail files")), "admin")
    assert suite.get("/api/admin/users", suite.token(ADMIN, scope="admin")).status == 200


def test_the_password_grant_default_is_every_user_scope_plus_admin_for_admins(suite: Suite) -> None:
    admin, bob = suite.tokens(ADMIN), suite.tokens(BOB)
    assert set(admin["scope"].split()) == set(scopes.IDENTITY + scopes.USER + ("admin",))
    assert set(bob["scope"].split()) == set(scopes.IDENTITY + scopes.USER)
    for method, path, scope in ELSEWHERE:  # served (404 is "no PGP key yet")
        assert suite.request(method, path, token=admin["access_token"]).status in (200, 404), path
        if scope != "admin":
            assert suite.request(method, path, token=bob["access_token"]).status in (200, 404), path


def test_an_old_name_is_an_alias_and_unknown_names_are_refused(suite: Suite) -> None:
    body = suite.tokens(BOB, scope="messages")
    assert body["scope"] == "chat"
    assert suite.get("/api/conversations", body["access_token"]).status == 200
    r = suite.grant(BOB, scope="root everything")
    assert r.status == 400 and r.json()["error"] == "invalid_scope"


def test_tokens_without_a_scope_claim(suite: Suite) -> None:
    """Tokens minted before scopes: only a password-grant session gets that grant's default."""
    issue = suite.registry.tokens.issue
    password_session = issue(BOB, scope="", session="a" * 32)
    assert suite.get("/api/emails", password_session).status == 200
    assert suite.get("/api/conversations", password_session).status == 200
    code_session = issue(BOB, scope="", session="code:" + "b" * 40)
    no_session = issue(BOB, scope="")
    for token in (code_session, no_session):
        assert_insufficient(suite.get("/api/emails", token), "mail")
        assert_insufficient(suite.get("/api/files", token), "files")
        assert suite.get("/api/me", token).status == 200
    # an old admin session keeps admin only while its user is an administrator
    assert suite.get("/api/admin/users", issue(ADMIN, scope="", session="c" * 32)).status == 200


def test_every_authenticated_route_declares_a_scope(suite: Suite) -> None:
    router: Router = suite.host.http.router
    for route in router.routes:
        assert route.auth == "none" or (route.scope and scopes.valid_requirement(route.scope)), route.pattern
    for prefix, _resource, auth, scope in router.mounts:
        assert auth == "none" or (scope and scopes.valid_requirement(scope)), prefix

    async def handler(request: Any) -> Any:
        return {}

    with pytest.raises(ValueError):
        router.route("GET", "/api/forgotten", handler)
    with pytest.raises(ValueError):
        router.route("GET", "/api/typo", handler, scope="mial")
    with pytest.raises(ValueError):
        router.mount("/forgotten", object(), auth="any")


# -- the consent page ------------------------------------------------------------------------------

def _register_client(suite: Suite, client: str, redirect: str) -> None:
    suite.registry.db.sync.run("t", lambda txn: txn.execute(
        "INSERT INTO oauth_clients (client_id, name, redirect_uris, created_at) VALUES (?, ?, ?, ?)",
        (client, "Notes", redirect, 0)))


def _consent(suite: Suite, scope: str | None) -> str:
    params = {"response_type": "code", "client_id": "notes-app", "redirect_uri": "https://notes.example.org/cb",
              "code_challenge": "A" * 43, "code_challenge_method": "S256", "state": "s"}
    if scope is not None:
        params["scope"] = scope
    page = suite.get("/oauth2/authorize?" + urlencode(params))
    assert page.status == 200, page.body
    return unescape(page.body.decode())


def test_the_consent_page_names_each_scope_in_words(suite: Suite) -> None:
    _register_client(suite, "notes-app", "https://notes.example.org/cb")
    text = _consent(suite, "mail calendar messages")
    for name in ("mail", "calendar", "chat"):
        assert scopes.DESCRIPTIONS[name] in text, name
    assert scopes.DESCRIPTIONS["files"] not in text and scopes.DESCRIPTIONS["admin"] not in text
    # no scope asked: the page says what the code grant then gives (identity only)
    text = _consent(suite, None)
    assert scopes.DESCRIPTIONS["openid"] in text and scopes.DESCRIPTIONS["mail"] not in text
    # words only for known scopes; anything else never reaches the page as markup
    page = _consent(suite, "<script>alert(1)</script> files")
    assert scopes.DESCRIPTIONS["files"] in page and not re.search(r"<li><b><script", page)


def test_a_code_grant_gives_only_what_was_consented(suite: Suite) -> None:
    from tau.auth import oauth_store

    _register_client(suite, "notes-app", "https://notes.example.org/cb")
    user_id = suite.registry.db.sync.run("t", lambda txn: txn.scalar("SELECT id FROM users WHERE address = ?",
                                                                      (BOB,)))
    from tau.http.oauth import s256

    verifier = "v" * 50
    suite.registry.db.sync.run("t", oauth_store.store_code, suite.registry.keys.mac("auth-code", "the-code"),
                               user_id, "notes-app", "https://notes.example.org/cb", s256(verifier),
                               "calendar admin")
    r = suite.client.post_form("/oauth2/token", {"grant_type": "authorization_code", "code": "the-code",
                                                 "code_verifier": verifier, "client_id": "notes-app",
                                                 "redirect_uri": "https://notes.example.org/cb"})
    assert r.status == 200, r.body
    token = r.json()["access_token"]
    assert r.json()["scope"] == "calendar"
    assert suite.get("/api/events", token).status == 200
    assert_insufficient(suite.get("/api/emails", token), "mail")
    assert_json_error(suite.get("/api/admin/users", token), 403, "forbidden")
