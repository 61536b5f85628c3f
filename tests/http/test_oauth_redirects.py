"""Issue 13 item 1 through HTTP: redirect URIs a browser would follow elsewhere are refused with an
error page (never a Location), registered clients match exactly, loopback with any port only for
native public clients, and confidential clients authenticate at /oauth2/token."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from tau.auth import oauth_clients
from tests.support.http import HttpResponse, assert_json_error

ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
ATTACK = "http://evil.example:1234\\@127.0.0.1/cb"

ATTACKS = [
    ATTACK, "http://evil.example\\@127.0.0.1:5555/cb", "http:/\\evil.example/cb", "http:\\\\evil.example\\cb",
    "http://127.0.0.1:5555\\@evil.example/cb",
    "http://evil.example:1234%5C@127.0.0.1/cb", "http://evil.example%5C@127.0.0.1/cb",
    "http://evil.example@127.0.0.1:5555/cb", "http://user:pw@127.0.0.1:5555/cb",
    "http://evil.example%40127.0.0.1:5555/cb", "http://127.0.0.1%2F@evil.example/cb",
    "http://127.0.0.1:5555/cb\t", "http://127.0.0.1:5555\t/cb", "http://ev\til.example@127.0.0.1/cb",
    "http://127.0.0.1:5555/cb\n", "http://127.0.0.1:5555/cb\r\nLocation: http://evil.example/", " http://127.0.0.1/cb",
    "HTTP://127.0.0.1:5555/cb", "Http://127.0.0.1:5555/cb", "HTTP://evil.example/cb",
    "http:evil.example/cb", "http:///evil.example/cb", "http:/127.0.0.1:5555/cb",
    "http://%65vil.example/cb", "http://127.0.0.1%2eevil.example/cb", "http://ｅvil.example/cb",
    "http://ex\u0430mple.com/cb", "http://xn--80ak6aa92e.com/cb",
    "http://127.0.0.1.evil.example:5555/cb", "http://localhost.evil.example:5555/cb", "http://localhost:5555/cb",
    "http://127.1:5555/cb", "http://0x7f.0.0.1:5555/cb", "http://2130706433:5555/cb", "http://[::ffff:7f00:1]/cb",
    "http://127.0.0.1:5555/cb#frag", "http://127.0.0.1:5555/cb#", "http://127.0.0.1:5555/cb#@evil.example",
    "http://127.0.0.1:80/cb", "http://127.0.0.1:5555", "http://127.0.0.1:5555/../cb",
    "https://127.0.0.1:5555/cb", "https://evil.example/steal", "javascript:alert(1)", "",
]


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Flow:
    """authorize (page + submit) → code → token, as a browser and the app would do it."""

    def __init__(self, tau: Any, client_id: str, redirect_uri: str) -> None:
        self.tau, self.client_id, self.redirect_uri = tau, client_id, redirect_uri
        self.verifier = secrets.token_urlsafe(48)
        self.params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                       "code_challenge": s256(self.verifier), "code_challenge_method": "S256", "state": "st-1"}

    def page(self) -> HttpResponse:
        return self.tau.get("/oauth2/authorize?" + urlencode(self.params))

    def submit_direct(self) -> HttpResponse:
        """POST the form without ever seeing a page (an attacker's forged submission)."""
        return self.tau.post_form("/oauth2/authorize", {**self.params, "username": ALICE, "password": PASSWORD,
                                                        "decision": "allow", "form_token": "0.x"})

    def code(self) -> str:
        page = self.page()
        assert page.status == 200, page.body
        token = re.search(rb"name=form_token value='([^']+)'", page.body).group(1).decode()
        response = self.tau.post_form("/oauth2/authorize", {**self.params, "form_token": token, "username": ALICE,
                                                            "password": PASSWORD, "decision": "allow"})
        assert response.status == 302, response.body
        location = response.header("location")
        assert location.startswith(self.redirect_uri + ("&" if "?" in self.redirect_uri else "?")), location
        return parse_qs(urlsplit(location).query)["code"][0]

    def exchange(self, code: str, headers: dict[str, str] | None = None, **extra: str) -> HttpResponse:
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": self.verifier,
                "client_id": self.client_id, "redirect_uri": self.redirect_uri, **extra}
        form = {k: v for k, v in form.items() if v is not None}
        return self.tau.request("POST", "/oauth2/token", body=urlencode(form).encode(),
                                headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})


def register(tau: Any, *uris: str, confidential: bool = False, native: bool = False) -> tuple[str, str | None]:
    reg = oauth_clients.validate("App", uris, confidential, native)
    secret = oauth_clients.new_secret() if confidential else None
    secret_hash = tau.registry.keys.mac(oauth_clients.MAC_LABEL, secret) if secret else None
    client = tau.registry.db.sync.run("t", oauth_clients.add_client, oauth_clients.new_client_id(), reg, secret_hash)
    return client.client_id, secret


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def assert_error_page(response: HttpResponse) -> None:
    assert response.status == 400, (response.status, response.body[:300])
    assert response.header("location") is None
    assert response.header("content-type").startswith("text/html") and b"not registered" in response.body


# -- the attack and its variants: an error page, never a redirect --------------------------------

@pytest.mark.parametrize("redirect", ATTACKS)
def test_an_ambiguous_redirect_is_an_error_page_for_an_unregistered_client(tau: Any, redirect: str) -> None:
    flow = Flow(tau, "notes-app", redirect)
    assert_error_page(flow.page())
    assert_error_page(flow.submit_direct())


@pytest.mark.parametrize("redirect", [ATTACK, "http://evil.example@127.0.0.1:5555/cb", "HTTP://127.0.0.1:5555/cb",
                                      "http://127.0.0.1:5555/cb#x", "http://127.0.0.1.evil.example:5555/cb"])
def test_an_ambiguous_redirect_is_an_error_page_for_a_native_client(tau: Any, redirect: str) -> None:
    client_id, _ = register(tau, native=True)
    assert_error_page(Flow(tau, client_id, redirect).page())


def test_the_attack_yields_no_code_and_no_token(tau: Any) -> None:
    """The reported attack end to end: the attacker's PKCE, the victim signs in, nothing leaves."""
    flow = Flow(tau, "notes-app", ATTACK)
    assert_error_page(flow.page())
    response = flow.submit_direct()
    assert_error_page(response)
    assert tau.registry.db.sync.run("t", lambda txn: txn.scalar("SELECT COUNT(*) FROM auth_codes")) == 0


# -- registered clients: exact match -------------------------------------------------------------

def test_a_registered_uri_works_end_to_end_and_a_near_miss_is_refused(tau: Any) -> None:
    exact = "https://app.example.org/oauth/cb?tenant=1"
    client_id, _ = register(tau, exact, "https://other.example.org/cb")
    flow = Flow(tau, client_id, exact)
    body = flow.exchange(flow.code()).json()
    assert tau.me(body["access_token"]).json()["address"] == ALICE
    for near in ("https://app.example.org/oauth/cb?tenant=2", "https://app.example.org/oauth/cb?tenant=1&",
                 "https://app.example.org/oauth/cB?tenant=1", "https://app.example.org/oauth/cb/?tenant=1",
                 "https://app.example.org:443/oauth/cb?tenant=1", "https://App.example.org/oauth/cb?tenant=1",
                 "https://app.example.org/oauth/cb?tenant=1#", "https://app.example.org/oauth/c?tenant=1",
                 "https://app.example.org/oauth/cb?tenant=10", "http://app.example.org/oauth/cb?tenant=1"):
        assert_error_page(Flow(tau, client_id, near).page())


def test_a_registered_public_client_gets_no_loopback_it_did_not_register(tau: Any) -> None:
    client_id, _ = register(tau, "https://app.example.org/cb", "http://127.0.0.1:5555/cb")
    Flow(tau, client_id, "http://127.0.0.1:5555/cb").code()
    for other in ("http://127.0.0.1:5556/cb", "http://127.0.0.1:5555/other", "http://[::1]:5555/cb"):
        assert_error_page(Flow(tau, client_id, other).page())


@pytest.mark.parametrize("redirect", ["http://127.0.0.1:49152/cb", "http://127.0.0.1:1/x/y?z=1",
                                      "http://[::1]:60000/oauth"])
def test_loopback_with_any_port_works_for_native_public_clients(tau: Any, redirect: str) -> None:
    native_id, _ = register(tau, native=True)
    for client_id in (native_id, "unregistered-native-app"):
        flow = Flow(tau, client_id, redirect)
        assert flow.exchange(flow.code()).status == 200


def test_loopback_with_any_port_is_refused_for_a_confidential_client(tau: Any) -> None:
    client_id, _ = register(tau, "https://app.example.org/cb", confidential=True)
    for redirect in ("http://127.0.0.1:5555/cb", "http://[::1]:5555/cb", "http://127.0.0.1/cb"):
        assert_error_page(Flow(tau, client_id, redirect).page())


# -- confidential clients authenticate at the token endpoint -------------------------------------

def test_a_confidential_client_without_or_with_a_wrong_secret_gets_401(tau: Any) -> None:
    redirect = "https://app.example.org/cb"
    client_id, secret = register(tau, redirect, confidential=True)
    flow = Flow(tau, client_id, redirect)
    code = flow.code()
    for attempt in (flow.exchange(code), flow.exchange(code, client_secret="wrong-" + secret),
                    flow.exchange(code, client_secret=""), flow.exchange(code, headers=basic(client_id, secret[:-1])),
                    flow.exchange(code, client_id=None, headers=basic(client_id, "nope"))):
        assert_json_error(attempt, 401, "invalid_client")
        assert attempt.header("www-authenticate").startswith("Basic")
    # the failed tries did not spend the code: the real client still gets its tokens (client_secret_post)
    tokens = flow.exchange(code, client_secret=secret)
    assert tokens.status == 200, tokens.body
    refresh = tokens.json()["refresh_token"]
    # its refresh token needs the secret too, and the failed try does not burn it
    assert_json_error(tau.refresh(refresh), 401, "invalid_client")
    again = tau.request("POST", "/oauth2/token", body=urlencode({"grant_type": "refresh_token",
                                                                 "refresh_token": refresh}).encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded", **basic(client_id, secret)})
    assert again.status == 200, again.body


def test_client_secret_basic_works_and_both_methods_at_once_do_not(tau: Any) -> None:
    redirect = "https://app.example.org/cb"
    client_id, secret = register(tau, redirect, confidential=True)
    flow = Flow(tau, client_id, redirect)
    code = flow.code()
    assert_json_error(flow.exchange(code, client_secret=secret, headers=basic(client_id, secret)), 400,
                      "invalid_request")
    assert flow.exchange(code, client_id=None, headers=basic(client_id, secret)).status == 200


def test_another_clients_secret_does_not_unlock_a_grant(tau: Any) -> None:
    redirect = "https://app.example.org/cb"
    victim_id, _ = register(tau, redirect, confidential=True)
    thief_id, thief_secret = register(tau, "https://thief.example/cb", confidential=True)
    flow = Flow(tau, victim_id, redirect)
    code = flow.code()
    assert_json_error(flow.exchange(code, headers=basic(thief_id, thief_secret), client_id=None), 400,
                      "invalid_grant")


def test_a_password_grant_cannot_borrow_a_confidential_client_id(tau: Any) -> None:
    client_id, secret = register(tau, "https://app.example.org/cb", confidential=True)
    assert_json_error(tau.password_grant(client_id=client_id), 401, "invalid_client")
    assert tau.password_grant(client_id=client_id, client_secret=secret).status == 200


def test_a_public_client_presenting_a_secret_is_refused(tau: Any) -> None:
    client_id, _ = register(tau, "https://app.example.org/cb")
    assert_json_error(tau.password_grant(client_id=client_id, client_secret="guess"), 401, "invalid_client")
    assert_json_error(tau.password_grant(client_id="unregistered", client_secret="guess"), 401, "invalid_client")
    assert tau.password_grant(client_id=client_id).status == 200


def test_a_removed_client_is_unknown_and_its_tokens_are_revoked(tau: Any) -> None:
    redirect = "https://app.example.org/cb"
    client_id, _ = register(tau, redirect)
    flow = Flow(tau, client_id, redirect)
    refresh = flow.exchange(flow.code()).json()["refresh_token"]
    tau.registry.db.sync.run("t", oauth_clients.remove_client, client_id)
    assert_error_page(Flow(tau, client_id, redirect).page())
    assert_json_error(tau.refresh(refresh), 400, "invalid_grant")


def test_discovery_names_the_client_authentication_methods(tau: Any) -> None:
    body = tau.get("/.well-known/openid-configuration").json()
    assert body["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post", "none"]


def test_a_confidential_clients_refresh_token_is_revoked_only_with_its_secret(tau: Any) -> None:
    redirect = "https://app.example.org/cb"
    client_id, secret = register(tau, redirect, confidential=True)
    flow = Flow(tau, client_id, redirect)
    refresh = flow.exchange(flow.code(), client_secret=secret).json()["refresh_token"]
    assert_json_error(tau.post_form("/oauth2/revoke", {"token": refresh}), 401, "invalid_client")
    assert_json_error(tau.post_form("/oauth2/revoke", {"token": refresh, "client_id": client_id,
                                                       "client_secret": "wrong"}), 401, "invalid_client")
    live = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id, "client_secret": secret}
    refresh = tau.post_form("/oauth2/token", live).json()["refresh_token"]  # still alive, rotated
    assert tau.post_form("/oauth2/revoke", {"token": refresh, "client_id": client_id,
                                            "client_secret": secret}).status == 200
    assert_json_error(tau.post_form("/oauth2/token", {**live, "refresh_token": refresh}), 400, "invalid_grant")


def test_unregistered_clients_can_be_switched_off(make_tau: Any) -> None:
    tau = make_tau(auth={"unregistered_oauth_clients": "false"})
    assert_error_page(Flow(tau, "unregistered-native-app", "http://127.0.0.1:5555/cb").page())
    native_id, _ = register(tau, native=True)
    flow = Flow(tau, native_id, "http://127.0.0.1:5555/cb")
    assert flow.exchange(flow.code()).status == 200
