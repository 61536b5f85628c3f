"""Issue 13 item 8: the admin page's session is an HttpOnly cookie plus a CSRF token.

Signing in through ``POST /api/session`` hands the browser cookies page script cannot read and
a body without any token; the admin API accepts the cookie, but a state-changing request that
carries it without the session's ``X-CSRF-Token`` (what a cross-site form or a forged request
looks like) is 403; logging out revokes the refresh family and clears the cookies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import add_user, make_registry
from tests.support.http import HttpResponse, assert_json_error

from .conftest import ALICE, BOB, PASSWORD, Admin

JSON = {"Content-Type": "application/json"}


def set_cookies(response: HttpResponse) -> dict[str, str]:
    """name -> the whole Set-Cookie value."""
    return {v.split("=", 1)[0]: v for k, v in response.raw_headers if k.lower() == "set-cookie"}


def cookie_header(response: HttpResponse) -> str:
    return "; ".join(v.split(";")[0] for v in set_cookies(response).values())


def attrs(value: str) -> dict[str, str]:
    out = {}
    for part in value.split(";")[1:]:
        name, _, val = part.strip().partition("=")
        out[name.lower()] = val
    return out


def login(admin: Admin, user: str = ALICE, scope: str = "admin", **headers: str) -> HttpResponse:
    """A session as the admin page opens it (``scope=admin``; a non-admin asks for no scope)."""
    r = admin.client.post_json("/api/session", {"username": user, "password": PASSWORD, "scope": scope},
                               headers=headers)
    assert r.status == 200, r.body
    return r


def test_login_sets_httponly_strict_cookies_and_returns_no_token(admin: Admin) -> None:
    r = login(admin)
    body = r.json()
    assert set(body) == {"user", "csrf_token", "expires_in"} and body["user"]["address"] == ALICE
    assert b"access_token" not in r.body and b"refresh_token" not in r.body
    cookies = set_cookies(r)
    assert set(cookies) == {"tau_session", "tau_refresh"}, cookies
    for value in cookies.values():
        a = attrs(value)
        assert "httponly" in a and a["samesite"].lower() == "strict", value
        assert "secure" not in a, value  # plain http here: a Secure cookie would never come back
    assert attrs(cookies["tau_session"])["path"] == "/"
    assert attrs(cookies["tau_refresh"])["path"] == "/api/session"  # no other route ever sees it
    assert int(attrs(cookies["tau_session"])["max-age"]) <= 3600


def test_cookie_works_on_the_admin_api_and_needs_csrf_to_change_anything(admin: Admin) -> None:
    r = login(admin)
    cookie, csrf = cookie_header(r), r.json()["csrf_token"]
    users = admin.client.get("/api/admin/users", headers={"Cookie": cookie})
    assert users.status == 200 and ALICE in users.body.decode()
    # the attack: the cookie rides along, the CSRF header does not (or is guessed)
    for headers in ({"Cookie": cookie}, {"Cookie": cookie, "X-CSRF-Token": "guess"},
                    {"Cookie": cookie, "X-CSRF-Token": ""}):
        r = admin.client.post_json("/api/admin/domains", {"name": "evil.test"}, headers=headers)
        assert_json_error(r, 403, "csrf_failed")
        r = admin.client.request("DELETE", f"/api/admin/users/{BOB}", headers=headers)
        assert_json_error(r, 403, "csrf_failed")
    # a form post (what a cross-site page can send) gets the same answer
    r = admin.client.post_form("/api/admin/domains", {"name": "evil.test"}, headers={"Cookie": cookie})
    assert_json_error(r, 403, "csrf_failed")
    assert b"evil.test" not in admin.client.get("/api/admin/domains", headers={"Cookie": cookie}).body
    assert BOB in admin.client.get("/api/admin/users", headers={"Cookie": cookie}).body.decode()  # not deleted
    ok = admin.client.post_json("/api/admin/domains", {"name": "good.test"},
                                headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert ok.status == 201, ok.body
    # after a reload the page asks who it is and gets the same CSRF token back
    me = admin.client.get("/api/session", headers={"Cookie": cookie})
    assert me.status == 200 and me.json()["csrf_token"] == csrf and me.json()["user"]["address"] == ALICE


def test_cookie_is_not_accepted_where_routes_did_not_opt_in(admin: Admin) -> None:
    r = login(admin)
    cookie = cookie_header(r)
    assert admin.client.get("/api/me", headers={"Cookie": cookie}).status == 200
    assert_json_error(admin.client.get("/api/account/2fa", headers={"Cookie": cookie}), 401)
    # a non-admin's cookie is still only a non-admin
    bob = cookie_header(login(admin, BOB, scope=""))
    assert_json_error(admin.client.get("/api/admin/users", headers={"Cookie": bob}), 403, "forbidden")


def test_login_refuses_forms_and_foreign_origins(admin: Admin) -> None:
    form = admin.client.post_form("/api/session", {"username": ALICE, "password": PASSWORD})
    assert_json_error(form, 415)
    assert not set_cookies(form)
    foreign = admin.client.post_json("/api/session", {"username": ALICE, "password": PASSWORD},
                                     headers={"Origin": "https://evil.example"})
    assert_json_error(foreign, 403, "cross_origin")
    assert not set_cookies(foreign)
    assert login(admin, Origin="http://localhost").status == 200  # the page's own origin
    wrong = admin.client.post_json("/api/session", {"username": ALICE, "password": "nope"})
    assert_json_error(wrong, 401, "invalid_grant")
    assert not set_cookies(wrong)


def test_refresh_rotates_and_logout_revokes_and_clears(admin: Admin) -> None:
    r = login(admin)
    refresh_cookie = set_cookies(r)["tau_refresh"].split(";")[0]
    rotated = admin.client.post_json("/api/session/refresh", {}, headers={"Cookie": refresh_cookie})
    assert rotated.status == 200, rotated.body
    assert rotated.json()["csrf_token"] == r.json()["csrf_token"]  # same session, same CSRF token
    new_refresh = set_cookies(rotated)["tau_refresh"].split(";")[0]
    assert new_refresh != refresh_cookie
    # cross-site style: a form post cannot refresh
    assert_json_error(admin.client.post_form("/api/session/refresh", {}, headers={"Cookie": new_refresh}), 415)
    out = admin.client.post_json("/api/session/logout", {}, headers={"Cookie": new_refresh})
    assert out.status == 204
    cleared = set_cookies(out)
    assert set(cleared) == {"tau_session", "tau_refresh"}
    assert all(attrs(v)["max-age"] == "0" and v.split(";")[0].endswith("=") for v in cleared.values()), cleared
    again = admin.client.post_json("/api/session/refresh", {}, headers={"Cookie": new_refresh})
    assert_json_error(again, 401, "invalid_token")


def test_a_bearer_token_can_become_a_cookie_session(admin: Admin) -> None:
    """The ``/admin#token=...`` link: the page trades the fragment's token for the cookie."""
    token = admin.token()
    r = admin.client.post_json("/api/session", {}, headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200 and set(set_cookies(r)) == {"tau_session"}
    assert set_cookies(r)["tau_session"].split(";")[0] == f"tau_session={token}"
    assert_json_error(admin.client.post_json("/api/session", {}, headers={"Authorization": "Bearer junk"}), 401)


@pytest.fixture
def https_admin(tmp_path: Path, db_url: str) -> Any:
    registry = make_registry(tmp_path / "tau", db_url, tau={"public_url": "https://mail.example.test"})
    add_user(registry, ALICE, PASSWORD, fast_hash=True, is_admin=True)
    yield Admin(registry)
    registry.db.close()


def test_behind_https_the_cookies_are_secure_and_host_prefixed(https_admin: Admin) -> None:
    r = login(https_admin, Origin="https://mail.example.test")
    cookies = set_cookies(r)
    assert set(cookies) == {"__Host-tau_session", "__Secure-tau_refresh"}, cookies
    assert all("secure" in attrs(v) for v in cookies.values())
    users = https_admin.client.get("/api/admin/users", headers={"Cookie": cookie_header(r)})
    assert users.status == 200
    # the http-named cookie is not what an https deployment reads
    plain = cookie_header(r).replace("__Host-", "")
    assert_json_error(https_admin.client.get("/api/admin/users", headers={"Cookie": plain}), 401)


def test_logout_refuses_the_old_access_cookie_at_once(admin: Admin) -> None:
    """Re-review of item 3: logout told no node about the revoked family, so the access cookie
    (a token of that family) kept working until the next poll."""
    r = login(admin)
    cookies = cookie_header(r)
    access = set_cookies(r)["tau_session"].split(";")[0]
    assert admin.client.get("/api/session", headers={"Cookie": access}).status == 200
    assert admin.client.get("/api/admin/users", headers={"Cookie": access}).status == 200
    out = admin.client.post_json("/api/session/logout", {}, headers={"Cookie": cookies})
    assert out.status == 204
    assert_json_error(admin.client.get("/api/session", headers={"Cookie": access}), 401, "invalid_token")
    assert_json_error(admin.client.get("/api/admin/users", headers={"Cookie": access}), 401, "invalid_token")
    bearer = access.split("=", 1)[1]  # the same token as a bearer: refused too
    assert_json_error(admin.client.get("/api/admin/users", token=bearer), 401, "invalid_token")


def test_logout_of_a_bearer_turned_cookie_session_ends_it(admin: Admin) -> None:
    token = admin.token()
    r = admin.client.post_json("/api/session", {}, headers={"Authorization": f"Bearer {token}"})
    access = set_cookies(r)["tau_session"].split(";")[0]
    assert admin.client.post_json("/api/session/logout", {}, headers={"Cookie": access}).status == 204
    assert_json_error(admin.client.get("/api/session", headers={"Cookie": access}), 401, "invalid_token")
