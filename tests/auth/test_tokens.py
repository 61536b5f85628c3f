"""JWT access tokens (ES256 from the installation secret): issue, verify, expiry on our clock,
tampering and foreign keys refused, a bounded verify cache."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import jwt
import pytest
from twisted.internet.task import Clock

from tau.auth import tokens as tokens_module
from tau.auth.tokens import InvalidToken, TokenService
from tau.keys import Keys

ISSUER = "https://mail.example.test"


@pytest.fixture
def clock() -> Clock:
    c = Clock()
    c.advance(time.time())  # the wall time: PyJWT checks the published-JWK test's token against it
    return c


@pytest.fixture
def keys() -> Keys:
    return Keys(os.urandom(32))


@pytest.fixture
def service(keys: Keys, clock: Clock) -> TokenService:
    return TokenService(keys, ISSUER, 3600, clock)


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_an_issued_token_verifies_to_its_claims(service: TokenService, clock: Clock, keys: Keys) -> None:
    token = service.issue("alice@example.test", scope="mail", session="fam1", client_id="app")
    claims = service.verify(token)
    assert claims["sub"] == "alice@example.test" and claims["iss"] == ISSUER and claims["aud"] == "tau"
    assert claims["exp"] == int(clock.seconds()) + 3600
    assert (claims["scope"], claims["sid"], claims["client_id"]) == ("mail", "fam1", "app")
    assert jwt.get_unverified_header(token)["kid"] == keys.jwt_kid


def test_tokens_verify_against_the_published_jwk(service: TokenService, keys: Keys) -> None:
    token = service.issue("alice@example.test")
    public = jwt.PyJWK(keys.jwk()).key
    assert jwt.decode(token, public, algorithms=["ES256"], audience="tau")["sub"] == "alice@example.test"


def test_a_token_expires_by_the_clock(service: TokenService, clock: Clock) -> None:
    token = service.issue("alice@example.test")
    clock.advance(3599)
    service.verify(token)
    clock.advance(1)
    with pytest.raises(InvalidToken, match="expired"):
        service.verify(token)


def test_a_cached_token_still_expires(service: TokenService, clock: Clock) -> None:
    token = service.issue("alice@example.test")
    service.verify(token)
    clock.advance(3600)
    with pytest.raises(InvalidToken):
        service.verify(token)


def test_a_token_changed_to_another_user_is_refused(service: TokenService) -> None:
    header, payload, signature = service.issue("alice@example.test").split(".")
    claims = unb64(payload)
    claims["sub"] = "bob@example.test"
    with pytest.raises(InvalidToken):
        service.verify(f"{header}.{b64(claims)}.{signature}")


def test_a_token_with_a_flipped_signature_bit_is_refused(service: TokenService) -> None:
    header, payload, signature = service.issue("alice@example.test").split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[5] ^= 1
    with pytest.raises(InvalidToken):
        service.verify(f"{header}.{payload}.{b64(bytes(raw))}")


def test_a_token_signed_by_another_installation_is_refused(service: TokenService, clock: Clock) -> None:
    other = TokenService(Keys(os.urandom(32)), ISSUER, 3600, clock)
    with pytest.raises(InvalidToken):
        service.verify(other.issue("alice@example.test"))


def test_unsigned_and_symmetric_tokens_are_refused(service: TokenService, keys: Keys, clock: Clock) -> None:
    now = int(clock.seconds())
    claims = {"iss": ISSUER, "aud": "tau", "sub": "alice@example.test", "iat": now, "exp": now + 60}
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    with pytest.raises(InvalidToken):
        service.verify(unsigned)
    # HS256 "signed" with the public key (the classic algorithm confusion)
    from cryptography.hazmat.primitives import serialization

    pem = keys.jwt_private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac

    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken):
        service.verify(f"{signing_input}.{b64(mac)}")


def test_a_token_for_another_issuer_or_audience_is_refused(keys: Keys, clock: Clock) -> None:
    now = int(clock.seconds())
    service = TokenService(keys, ISSUER, 3600, clock)
    for claims in ({"iss": "https://evil.test", "aud": "tau"}, {"iss": ISSUER, "aud": "other"}):
        token = jwt.encode({**claims, "sub": "alice@example.test", "iat": now, "exp": now + 60},
                           keys.jwt_private_key, algorithm="ES256")
        with pytest.raises(InvalidToken):
            service.verify(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 5000, "eyJhbGciOiJFUzI1NiJ9..", "...."])
def test_garbage_is_an_invalid_token_not_a_crash(service: TokenService, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        service.verify(garbage)


def test_verification_is_cached_per_token(service: TokenService, monkeypatch: pytest.MonkeyPatch) -> None:
    decodes = []
    real = jwt.decode
    monkeypatch.setattr(tokens_module.jwt, "decode", lambda *a, **k: decodes.append(1) or real(*a, **k))
    token = service.issue("alice@example.test")
    for _ in range(100):
        service.verify(token)
    assert len(decodes) == 1


def test_the_verify_cache_is_bounded(service: TokenService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens_module, "CACHE_SIZE", 3)
    decodes: list[str] = []
    real = jwt.decode
    monkeypatch.setattr(tokens_module.jwt, "decode", lambda t, *a, **k: decodes.append(t) or real(t, *a, **k))
    issued = [service.issue(f"user{n}@example.test") for n in range(4)]
    for token in issued:
        service.verify(token)
    assert len(service._cache) == 3
    service.verify(issued[3])  # recent: still cached
    assert len(decodes) == 4
    service.verify(issued[0])  # the oldest was evicted: verified again
    assert len(decodes) == 5
