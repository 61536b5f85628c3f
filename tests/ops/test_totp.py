"""TOTP 2FA: RFC 6238 vectors, token endpoint (totp_required), replay, recovery codes, protocol
logins refusing the account password (app passwords only), REST self-service and the CLI."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from twisted.application.service import MultiService

from tau.app.host import AppHost
from tau.auth import accounts, totp
from tau.auth.authenticator import LoginFailed
from tests.support.harness import add_user, resolve
from tests.support.http import FakeHttpClient, assert_json_error

ALICE, PASSWORD = "alice@example.test", "secret-Pa55"


def test_rfc6238_and_rfc4226_vectors() -> None:
    secret = b"12345678901234567890"
    assert [totp.hotp(secret, c) for c in range(3)] == ["755224", "287082", "359152"]  # RFC 4226 App. D
    for t, code in ((59, "94287082"), (1111111109, "07081804"), (2000000000, "69279037")):  # RFC 6238 App. B
        assert totp.hotp(secret, t // 30, 8) == code


@pytest.fixture
def site(registry: Any) -> Any:
    from tau.admin import service as admin_service
    from tau.http import service

    add_user(registry, ALICE, PASSWORD, fast_hash=True)
    host = AppHost(registry, MultiService(), MultiService())
    service.install(registry, host)
    admin_service.install(registry, host)
    return FakeHttpClient(host.http.site)


def _secret(uri: str) -> bytes:
    b32 = parse_qs(urlsplit(uri).query)["secret"][0]
    return base64.b32decode(b32 + "=" * (-len(b32) % 8))


def _grant(site: Any, **extra: str) -> Any:
    return site.post_form("/oauth2/token", {"grant_type": "password", "username": ALICE, "password": PASSWORD,
                                            **extra})


def test_token_endpoint_and_protocol_logins_with_2fa(registry: Any, site: Any) -> None:
    uri, codes = registry.db.sync.run("on", totp.begin, registry.keys, ALICE, True)
    assert uri.startswith("otpauth://totp/tau:alice%40example.test?secret=") and len(codes) == 10
    secret = _secret(uri)
    assert_json_error(_grant(site), 401, "totp_required")
    code = totp.totp(secret, registry.clock.seconds())
    assert_json_error(_grant(site, totp="000000" if code != "000000" else "111111"), 401, "invalid_totp")
    assert _grant(site, totp=code).status == 200
    assert_json_error(_grant(site, totp=code), 401, "invalid_totp")  # replay of the same step
    assert _grant(site, totp=codes[0].upper()).status == 200  # a recovery code, once
    assert_json_error(_grant(site, totp=codes[0]), 401, "invalid_totp")
    # protocols (SMTP/IMAP/DAV all go through authenticate without second_factor)
    with pytest.raises(LoginFailed):
        resolve(registry.authenticator.authenticate(ALICE, PASSWORD, "192.0.2.1"))
    app = "app-" + "x" * 28
    registry.db.sync.run("app", accounts.add_app_password, ALICE, "phone", registry.keys.mac("app-password", app))
    assert resolve(registry.authenticator.authenticate(ALICE, app, "192.0.2.1")).address == ALICE
    # (DAV Basic, IMAP LOGIN and SMTP AUTH all call authenticate() exactly like this)
    assert registry.db.sync.run("off", totp.disable, ALICE)
    assert resolve(registry.authenticator.authenticate(ALICE, PASSWORD, "192.0.2.1")).address == ALICE


def test_rest_self_service(registry: Any, site: Any) -> None:
    token = _grant(site).json()["access_token"]
    assert site.get("/api/account/2fa", token=token).json() == {"enabled": False}
    setup = site.post_json("/api/account/2fa", {"action": "setup"}, token=token).json()
    secret = _secret(setup["otpauth_uri"])
    assert _grant(site).status == 200  # pending: not on until confirmed
    assert_json_error(site.post_json("/api/account/2fa", {"action": "confirm", "code": "12"}, token=token), 400)
    code = totp.totp(secret, registry.clock.seconds())
    r = site.post_json("/api/account/2fa", {"action": "confirm", "code": code}, token=token)
    assert r.json() == {"enabled": True}
    assert_json_error(_grant(site), 401, "totp_required")
    assert_json_error(site.post_json("/api/account/2fa", {"action": "setup"}, token=token), 409, "totp_enabled")
    r = site.post_json("/api/account/2fa", {"action": "disable", "code": setup["recovery_codes"][3]}, token=token)
    assert r.json() == {"enabled": False}
    assert _grant(site).status == 200


def test_cli_enable_status_disable(registry: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from tau.cli.main import main

    add_user(registry, ALICE, PASSWORD, fast_hash=True)
    cfg = registry.config.path
    assert main(["--config", cfg, "user", "2fa", "enable", ALICE]) == 0
    out = capsys.readouterr().out
    secret = _secret(out.splitlines()[0])
    assert len(out.splitlines()) >= 12
    user = registry.db.sync.run("u", accounts.require_user, ALICE)
    assert registry.db.sync.run("v", totp.verify, registry.keys, user.id, totp.totp(secret, registry.clock.seconds()))
    assert main(["--config", cfg, "user", "2fa", "status", ALICE]) == 0
    assert capsys.readouterr().out.strip() == "enabled"
    assert main(["--config", cfg, "user", "2fa", "disable", ALICE]) == 0
    assert main(["--config", cfg, "user", "2fa", "status", ALICE]) == 0
    assert capsys.readouterr().out.strip().endswith("disabled")
    assert main(["--config", cfg, "user", "2fa", "enable", "nobody@example.test"]) == 1
