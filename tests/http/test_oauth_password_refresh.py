"""``POST /oauth2/token``: the password grant, refresh-token rotation with reuse detection
(RFC 6749 §6, OAuth 2.0 Security BCP §4.14), revocation (RFC 7009), discovery and JWKS."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from tau.auth import accounts
from tau.auth.throttle import PAIR_POLICY
from tests.support.http import assert_json_error

ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
OTHER_HASH = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$1hG5jPfbyJ9cI7OtvL5hdQ"  # of some other password


# -- password grant ----------------------------------------------------------------------------

def test_the_password_grant_gives_access_and_refresh_tokens(tau: Any) -> None:
    response = tau.password_grant()
    assert response.status == 200
    assert response.header("cache-control") == "no-store" and response.header("pragma") == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["access_token"].count(".") == 2 and len(body["refresh_token"]) >= 40
    assert tau.me(body["access_token"]).json()["address"] == ALICE


def test_the_access_token_is_a_jwt_for_the_user(tau: Any) -> None:
    claims = jwt.decode(tau.token(), options={"verify_signature": False})
    assert claims["sub"] == ALICE and claims["aud"] == "tau" and claims["exp"] - claims["iat"] == 3600


def test_a_wrong_password_is_401_json_with_request_id(tau: Any) -> None:
    response = tau.password_grant(password="wrong-password")
    body = assert_json_error(response, 401, "invalid_grant")
    assert body["error_description"] == body["message"]
    assert response.header("www-authenticate").startswith("Bearer")


def test_an_unknown_user_gets_exactly_the_same_answer(tau: Any) -> None:
    known = assert_json_error(tau.password_grant(password="wrong-password"), 401)
    unknown = assert_json_error(tau.password_grant("nobody@example.test", "wrong-password"), 401)
    assert (known["error"], known["message"]) == (unknown["error"], unknown["message"])


@pytest.mark.parametrize("form", [{"grant_type": "password", "username": ALICE},
                                  {"grant_type": "password", "password": PASSWORD},
                                  {"username": ALICE, "password": PASSWORD}])
def test_missing_fields_are_invalid_request(tau: Any, form: dict[str, str]) -> None:
    assert_json_error(tau.post_form("/oauth2/token", form), 400, "invalid_request")


def test_an_unknown_grant_type_is_refused(tau: Any) -> None:
    response = tau.post_form("/oauth2/token", {"grant_type": "client_credentials"})
    assert_json_error(response, 400, "unsupported_grant_type")


def test_the_token_endpoint_takes_only_post(tau: Any) -> None:
    assert_json_error(tau.get("/oauth2/token?grant_type=password"), 405)


def test_repeated_wrong_passwords_are_throttled_with_retry_after(tau: Any) -> None:
    for _ in range(PAIR_POLICY.free + 1):
        assert_json_error(tau.password_grant(password="guess-guess"), 401)
    response = tau.password_grant()  # even the right password has to wait
    assert_json_error(response, 429, "too_many_failed_logins")
    assert int(response.header("retry-after")) >= 1
    tau.clock.advance(int(response.header("retry-after")))
    assert tau.password_grant().status == 200


def test_only_known_scopes_are_granted(tau: Any) -> None:
    body = tau.password_grant(scope="mail admin calendar root").json()
    assert body["scope"] == "mail calendar"
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["scope"] == "mail calendar"


def test_a_disabled_user_gets_no_token(tau: Any) -> None:
    tau.registry.db.sync.run("t", accounts.set_disabled, ALICE, True)
    assert_json_error(tau.password_grant(), 401, "invalid_grant")


# -- refresh tokens ----------------------------------------------------------------------------

def test_a_refresh_token_gives_new_tokens_and_rotates(tau: Any) -> None:
    first = tau.tokens()
    response = tau.refresh(first["refresh_token"])
    assert response.status == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert tau.me(second["access_token"]).json()["address"] == ALICE
    assert tau.refresh(second["refresh_token"]).status == 200


def test_reusing_a_refresh_token_revokes_the_whole_family(tau: Any) -> None:
    first = tau.tokens()
    second = tau.refresh(first["refresh_token"]).json()
    replay = tau.refresh(first["refresh_token"])
    body = assert_json_error(replay, 400, "invalid_grant")
    assert "reuse" in body["message"]
    # the newer token of the same family is dead too: thief and victim both sign in again
    assert_json_error(tau.refresh(second["refresh_token"]), 400, "invalid_grant")


def test_reuse_in_one_family_leaves_other_sessions_alone(tau: Any) -> None:
    laptop, phone = tau.tokens(), tau.tokens()
    tau.refresh(laptop["refresh_token"])
    tau.refresh(laptop["refresh_token"])  # reuse: the laptop family dies
    assert tau.refresh(phone["refresh_token"]).status == 200


@pytest.mark.parametrize("presented", ["", "made-up-token", "x" * 500])
def test_unknown_refresh_tokens_are_refused(tau: Any, presented: str) -> None:
    assert_json_error(tau.refresh(presented), 400)


def test_a_refresh_token_expires(make_tau: Any) -> None:
    tau = make_tau(auth={"refresh_token_ttl": "600"})
    tokens = tau.tokens()
    tau.clock.advance(601)
    assert_json_error(tau.refresh(tokens["refresh_token"]), 400, "invalid_grant")


def test_a_refresh_token_dies_with_a_password_change(tau: Any) -> None:
    tokens = tau.tokens()
    tau.registry.db.sync.run("t", accounts.set_password, ALICE, OTHER_HASH)
    assert_json_error(tau.refresh(tokens["refresh_token"]), 400, "invalid_grant")


def test_a_disabled_user_cannot_refresh(tau: Any) -> None:
    tokens = tau.tokens()
    tau.registry.db.sync.run("t", accounts.set_disabled, ALICE, True)
    assert_json_error(tau.refresh(tokens["refresh_token"]), 400, "invalid_grant")


def test_revoking_a_refresh_token_ends_its_family(tau: Any) -> None:
    first = tau.tokens()
    second = tau.refresh(first["refresh_token"]).json()
    response = tau.post_form("/oauth2/revoke", {"token": first["refresh_token"]})
    assert response.status == 200 and response.json() == {}
    assert_json_error(tau.refresh(second["refresh_token"]), 400, "invalid_grant")


def test_revoking_an_unknown_token_is_still_200(tau: Any) -> None:
    assert tau.post_form("/oauth2/revoke", {"token": "nothing-like-it"}).status == 200


# -- discovery ---------------------------------------------------------------------------------

def test_discovery_describes_the_endpoints(tau: Any) -> None:
    body = tau.get("/.well-known/openid-configuration").json()
    assert body["issuer"] == tau.registry.issuer == tau.registry.public_url
    assert body["token_endpoint"] == tau.registry.public_url + "/oauth2/token"
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in body["grant_types_supported"]


def test_discovery_ignores_a_hostile_host_header(tau: Any) -> None:
    body = tau.get("/.well-known/openid-configuration", headers={"Host": "evil.test/<script>"}).json()
    assert body["token_endpoint"] == tau.registry.public_url + "/oauth2/token"


def test_discovery_links_use_public_url_whatever_the_host_header(tau: Any) -> None:
    body = tau.get("/.well-known/openid-configuration", headers={"Host": "other.example:8080"}).json()
    urls = [body[k] for k in ("issuer", "authorization_endpoint", "token_endpoint", "revocation_endpoint",
                              "jwks_uri")]
    assert all(u.startswith(tau.registry.public_url) for u in urls), urls


def test_access_tokens_verify_with_the_published_jwks(tau: Any) -> None:
    keys = tau.get("/oauth2/jwks").json()["keys"]
    token = tau.token()
    header = jwt.get_unverified_header(token)
    key = next(k for k in keys if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], audience="tau",
                        issuer=tau.registry.issuer, options={"verify_iat": False, "verify_nbf": False})
    assert claims["sub"] == ALICE
