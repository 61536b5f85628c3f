"""The authorization-code grant with PKCE S256 (RFC 6749 §4.1, RFC 7636) and its consent page:
the happy path, and every way a stolen, replayed or tampered request must fail."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.support.http import HttpResponse, assert_json_error

ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
CLIENT, REDIRECT = "notes-app", "http://127.0.0.1:5555/callback"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""


def hidden_fields(page: HttpResponse) -> dict[str, str]:
    parser = Inputs()
    parser.feed(page.body.decode())
    return parser.fields


class Flow:
    """One client's authorization request, step by step, as a browser and an app would do it."""

    def __init__(self, tau: Any, **overrides: str) -> None:
        self.tau = tau
        self.verifier = secrets.token_urlsafe(48)
        self.params = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT,
                       "code_challenge": s256(self.verifier), "code_challenge_method": "S256",
                       "state": "st-" + secrets.token_hex(4), "scope": "mail"}
        self.params.update(overrides)

    def page(self) -> HttpResponse:
        return self.tau.get("/oauth2/authorize?" + urlencode(self.params))

    def submit(self, username: str = ALICE, password: str = PASSWORD, decision: str = "allow",
               **changes: str) -> HttpResponse:
        page = self.page()
        assert page.status == 200, page.body
        form = {**hidden_fields(page), "username": username, "password": password, "decision": decision, **changes}
        return self.tau.post_form("/oauth2/authorize", form)

    def code(self) -> str:
        response = self.submit()
        assert response.status == 302, response.body
        query = parse_qs(urlsplit(response.header("location")).query)
        assert query["state"] == [self.params["state"]]
        return query["code"][0]

    def exchange(self, code: str, **changes: str | None) -> HttpResponse:
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": self.verifier,
                "client_id": CLIENT, "redirect_uri": REDIRECT, **changes}
        return self.tau.post_form("/oauth2/token", {k: v for k, v in form.items() if v is not None})


@pytest.fixture
def flow(tau: Any) -> Flow:
    return Flow(tau)


# -- the happy path ----------------------------------------------------------------------------

def test_the_consent_page_is_a_hardened_login_form(flow: Flow) -> None:
    page = flow.page()
    assert page.status == 200 and page.header("content-type").startswith("text/html")
    assert page.header("x-frame-options") == "DENY"
    assert "frame-ancestors 'none'" in page.header("content-security-policy")
    assert CLIENT.encode() in page.body and b'name=password type=password' in page.body
    fields = hidden_fields(page)
    assert fields["redirect_uri"] == REDIRECT and fields["form_token"]


def test_allowing_redirects_with_a_code_and_the_state(flow: Flow) -> None:
    response = flow.submit()
    assert response.status == 302
    location = urlsplit(response.header("location"))
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert set(parse_qs(location.query)) == {"code", "state"}


def test_the_code_and_verifier_give_tokens_for_the_user(flow: Flow) -> None:
    response = flow.exchange(flow.code())
    assert response.status == 200, response.body
    body = response.json()
    assert body["scope"] == "mail" and body["refresh_token"]
    assert flow.tau.me(body["access_token"]).json()["address"] == ALICE
    assert flow.tau.refresh(body["refresh_token"]).status == 200


def test_a_registered_client_may_use_its_https_redirect(tau: Any) -> None:
    redirect = "https://notes.example.org/oauth/done"
    tau.registry.db.sync.run("t", lambda txn: txn.execute(
        "INSERT INTO oauth_clients (client_id, name, redirect_uris, created_at) VALUES (?, ?, ?, ?)",
        (CLIENT, "Notes", redirect + " https://other.example.org/cb", 0)))
    flow = Flow(tau, redirect_uri=redirect)
    code = flow.code()
    assert flow.exchange(code, redirect_uri=redirect).status == 200


def test_denying_redirects_with_access_denied(flow: Flow) -> None:
    response = flow.submit(decision="deny")
    assert response.status == 302
    query = parse_qs(urlsplit(response.header("location")).query)
    assert query == {"error": ["access_denied"], "state": [flow.params["state"]]}


def test_a_wrong_password_shows_the_form_again(flow: Flow) -> None:
    response = flow.submit(password="wrong-password")
    assert response.status == 401 and response.header("location") is None
    assert b"Wrong address or password" in response.body and hidden_fields(response)["form_token"]


# -- PKCE failures -----------------------------------------------------------------------------

def test_an_exchange_without_verifier_fails(flow: Flow) -> None:
    body = assert_json_error(flow.exchange(flow.code(), code_verifier=None), 400, "invalid_request")
    assert "code_verifier" in body["message"]


def test_an_exchange_with_the_wrong_verifier_fails(flow: Flow) -> None:
    code = flow.code()
    body = assert_json_error(flow.exchange(code, code_verifier=secrets.token_urlsafe(48)), 400, "invalid_grant")
    assert "code_verifier" in body["message"]
    # and the code is spent: a second try with the right verifier fails too
    assert_json_error(flow.exchange(code), 400, "invalid_grant")


@pytest.mark.parametrize("verifier", ["short", "x" * 129, "has spaces in it and is long enough to pass length"])
def test_a_malformed_verifier_is_invalid_request(flow: Flow, verifier: str) -> None:
    assert_json_error(flow.exchange(flow.code(), code_verifier=verifier), 400, "invalid_request")


def test_the_plain_method_is_refused_at_authorization(tau: Any) -> None:
    flow = Flow(tau, code_challenge_method="plain")
    flow.params["code_challenge"] = flow.verifier
    response = flow.page()
    assert response.status == 302
    query = parse_qs(urlsplit(response.header("location")).query)
    assert query["error"] == ["invalid_request"] and "S256" in query["error_description"][0]


def test_a_plain_verifier_never_matches_an_s256_challenge(tau: Any) -> None:
    """A client that sends the challenge itself as the verifier (plain semantics) gets nothing."""
    flow = Flow(tau)
    flow.params["code_challenge"] = flow.verifier  # 64 chars, valid as a challenge
    code = flow.code()
    assert_json_error(flow.exchange(code, code_verifier=flow.verifier), 400, "invalid_grant")


def test_a_missing_challenge_is_refused(tau: Any) -> None:
    flow = Flow(tau)
    del flow.params["code_challenge"]
    response = flow.page()
    assert response.status == 302 and "invalid_request" in response.header("location")


def test_reusing_a_code_fails_and_revokes_what_the_first_use_issued(flow: Flow) -> None:
    code = flow.code()
    first = flow.exchange(code).json()
    body = assert_json_error(flow.exchange(code), 400, "invalid_grant")
    assert "already used" in body["message"]
    assert_json_error(flow.tau.refresh(first["refresh_token"]), 400, "invalid_grant")


def test_a_code_for_another_redirect_uri_fails(flow: Flow) -> None:
    response = flow.exchange(flow.code(), redirect_uri="http://127.0.0.1:6666/callback")
    assert_json_error(response, 400, "invalid_grant")


def test_a_code_for_another_client_fails(flow: Flow) -> None:
    assert_json_error(flow.exchange(flow.code(), client_id="evil-app"), 400, "invalid_grant")


def test_an_unknown_code_fails(flow: Flow) -> None:
    assert_json_error(flow.exchange(secrets.token_urlsafe(32)), 400, "invalid_grant")


def test_an_expired_code_fails(flow: Flow) -> None:
    code = flow.code()
    flow.tau.clock.advance(61)
    body = assert_json_error(flow.exchange(code), 400, "invalid_grant")
    assert "expired" in body["message"]


# -- the consent page refuses to be an open redirector or a CSRF target ------------------------

@pytest.mark.parametrize("redirect", ["https://evil.example/steal", "http://evil.example:5555/cb",
                                      "javascript:alert(1)", "http://127.0.0.1:5555/cb#frag", ""])
def test_an_unregistered_redirect_is_an_error_page_not_a_redirect(tau: Any, redirect: str) -> None:
    flow = Flow(tau, redirect_uri=redirect)
    for response in (flow.page(), tau.post_form("/oauth2/authorize", {**flow.params, "username": ALICE,
                                                                       "password": PASSWORD, "decision": "allow"})):
        assert response.status == 400 and response.header("location") is None
        assert b"not registered" in response.body


def test_a_missing_client_id_is_an_error_page(tau: Any) -> None:
    response = Flow(tau, client_id="").page()
    assert response.status == 400 and response.header("location") is None


def test_a_form_without_its_token_is_refused(flow: Flow) -> None:
    response = flow.submit(form_token="")
    assert response.status == 400 and response.header("location") is None
    assert b"expired" in response.body


def test_a_forged_form_token_is_refused(flow: Flow) -> None:
    issued = int(flow.tau.clock.seconds())
    response = flow.submit(form_token=f"{issued}.{'0' * 64}")
    assert response.status == 400 and response.header("location") is None


def test_an_expired_form_is_refused(flow: Flow) -> None:
    page = flow.page()
    flow.tau.clock.advance(601)
    form = {**hidden_fields(page), "username": ALICE, "password": PASSWORD, "decision": "allow"}
    response = flow.tau.post_form("/oauth2/authorize", form)
    assert response.status == 400 and response.header("location") is None


def test_a_form_token_is_bound_to_its_parameters(flow: Flow, tau: Any) -> None:
    """The token from one request cannot approve another challenge (an attacker's)."""
    attacker = Flow(tau)
    response = flow.submit(code_challenge=attacker.params["code_challenge"])
    assert response.status == 400 and response.header("location") is None


def test_hostile_parameters_are_escaped_on_the_page(tau: Any) -> None:
    flow = Flow(tau, client_id="<script>alert(1)</script>", state="'><img src=x onerror=alert(1)>")
    page = flow.page()
    assert page.status == 200
    assert b"<script>alert(1)" not in page.body and b"<img src=x" not in page.body
    assert hidden_fields(page)["state"] == flow.params["state"]
