"""Issue 18 item 9: an admin administers through ``/api/admin`` — accounts (initial password or
invite link, disable, quota, admin flag, 2FA reset, app passwords), DKIM keys and the DNS check per
domain, aliases and catch-alls, storage use and recent security events. Every route is admin-only
and every change leaves an ``admin_audit`` line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import capturedLogs

from tau.auth import accounts, totp
from tau.auth.authenticator import LoginFailed
from tests.support.harness import add_user, make_registry
from tests.support.http import assert_json_error
from tests.support.outbound import RemotePeer

from .conftest import ALICE, BOB, PASSWORD, Admin

NEW_PASSWORD = "carol-Pa55-long"
ENDPOINTS = [("GET", f"/api/admin/users/{BOB}"), ("POST", f"/api/admin/users/{BOB}/invite"),
             ("DELETE", f"/api/admin/users/{BOB}/2fa"), ("GET", f"/api/admin/users/{BOB}/app-passwords"),
             ("DELETE", f"/api/admin/users/{BOB}/app-passwords/1"), ("PATCH", f"/api/admin/users/{BOB}"),
             ("GET", "/api/admin/domains/example.test/dkim"), ("POST", "/api/admin/domains/example.test/dkim"),
             ("GET", "/api/admin/domains/example.test/dns"), ("GET", "/api/admin/security-events"),
             ("POST", "/api/admin/aliases")]


def login(admin: Admin, address: str, password: str) -> Any:
    from twisted.internet import defer

    d = defer.ensureDeferred(admin.registry.authenticator.authenticate(address, password, "192.0.2.9"))
    failures: list[Any] = []
    results: list[Any] = []
    d.addCallbacks(results.append, failures.append)
    if failures:
        failures[0].trap(LoginFailed)
        return None
    return results[0]


def test_every_new_route_is_403_json_for_a_non_admin_and_401_anonymous(admin: Admin) -> None:
    bob = admin.token(BOB)
    for method, path in ENDPOINTS:
        assert_json_error(admin.json(method, path, {"address": "x@example.test", "destination": BOB}, bob),
                          403, "forbidden")
        assert_json_error(admin.json(method, path, {}), 401)
    assert admin.registry.db.sync.run("a", accounts.list_aliases) == []


def test_add_user_with_an_initial_password_who_then_logs_in(admin: Admin) -> None:
    t = admin.token()
    r = admin.json("POST", "/api/admin/users", {"address": "carol@example.test", "password": NEW_PASSWORD}, t)
    assert r.status == 201 and "invite_url" not in r.json()
    assert login(admin, "carol@example.test", NEW_PASSWORD).address == "carol@example.test"
    assert_json_error(admin.json("POST", "/api/admin/users", {"address": "dan@example.test", "password": "short"}, t),
                      400, "weak_password")
    assert_json_error(admin.json("POST", "/api/admin/users", {"address": "dan@example.test"}, t), 400)
    assert_json_error(admin.json("POST", "/api/admin/users", {"address": "dan@example.test", "invite": True,
                                                              "password": NEW_PASSWORD}, t), 400)


def test_an_invite_link_sets_the_password_once(admin: Admin) -> None:
    t = admin.token()
    r = admin.json("POST", "/api/admin/users", {"address": "dan@example.test", "invite": True}, t)
    assert r.status == 201 and r.header("cache-control") == "no-store"
    url = r.json()["invite_url"]
    assert "/invite#token=" in url
    token = url.split("#token=", 1)[1]
    listed = {u["address"]: u for u in admin.get("/api/admin/users", t).json()["items"]}
    assert listed["dan@example.test"]["invited"] is True and listed[BOB]["invited"] is False
    assert login(admin, "dan@example.test", "") is None
    assert admin.client.post_json("/api/invite", {"token": token}).json() == {"address": "dan@example.test"}
    assert_json_error(admin.client.post_json("/api/invite", {"token": token, "password": "short"}), 400,
                      "weak_password")
    ok = admin.client.post_json("/api/invite", {"token": token, "password": NEW_PASSWORD})
    assert ok.status == 200 and ok.json()["address"] == "dan@example.test"
    assert login(admin, "dan@example.test", NEW_PASSWORD) is not None
    again = admin.client.post_json("/api/invite", {"token": token, "password": "another-Pa55-long"})
    assert_json_error(again, 400, "invalid_invite")
    assert login(admin, "dan@example.test", NEW_PASSWORD) is not None  # the second use changed nothing
    # a fresh link is only for accounts without a password
    assert_json_error(admin.json("POST", "/api/admin/users/dan@example.test/invite", {}, t), 409, "has_password")


def test_invite_tokens_cannot_be_forged_reused_for_others_or_used_late(admin: Admin) -> None:
    t = admin.token()
    r = admin.json("POST", "/api/admin/users", {"address": "eve@example.test", "invite": True}, t)
    token = r.json()["invite_url"].split("#token=", 1)[1]
    user_id, expires, mac = token.split(".")
    bob_id = admin.registry.db.sync.run("b", accounts.get_user, BOB).id
    for forged in (f"{bob_id}.{expires}.{mac}", f"{user_id}.{int(expires) + 99}.{mac}", f"{user_id}.{expires}.00",
                   "junk", "", "1.2", None, 5, "9" * 300):
        assert_json_error(admin.client.post_json("/api/invite", {"token": forged, "password": NEW_PASSWORD}),
                          400, "invalid_invite")
    fresh = admin.json("POST", "/api/admin/users/eve@example.test/invite", {}, t).json()["invite_url"]
    assert "#token=" in fresh  # the first link stays valid too, until used or expired
    admin.registry.reactor.advance(8 * 86400)
    assert_json_error(admin.client.post_json("/api/invite", {"token": token, "password": NEW_PASSWORD}), 400,
                      "invalid_invite")
    assert admin.registry.db.sync.run("u", accounts.get_user, "eve@example.test").password_hash is None


def test_an_invite_of_a_disabled_account_does_not_work(admin: Admin) -> None:
    t = admin.token()
    token = admin.json("POST", "/api/admin/users", {"address": "fay@example.test", "invite": True},
                       t).json()["invite_url"].split("#token=", 1)[1]
    assert admin.json("PATCH", "/api/admin/users/fay@example.test", {"disabled": True}, t).status == 200
    assert_json_error(admin.client.post_json("/api/invite", {"token": token, "password": NEW_PASSWORD}), 400,
                      "invalid_invite")


def test_two_uses_of_one_invite_set_one_password(admin: Admin) -> None:
    """The store's conditional update is what makes a link single-use under a race."""
    user = admin.registry.db.sync.run("u", accounts.add_user, "gil@example.test", None)
    db = admin.registry.db.sync
    assert db.run("first", accounts.set_initial_password, user.id, "hash-1") is True
    assert db.run("second", accounts.set_initial_password, user.id, "hash-2") is False
    assert db.run("u", accounts.get_user, "gil@example.test").password_hash == "hash-1"


def test_disable_and_enable_take_effect_at_once(admin: Admin) -> None:
    t = admin.token()
    bob_token = admin.token(BOB)
    assert login(admin, BOB, PASSWORD) is not None
    r = admin.json("PATCH", f"/api/admin/users/{BOB}", {"disabled": True}, t)
    assert r.status == 200 and r.json()["disabled"] is True
    assert login(admin, BOB, PASSWORD) is None
    assert_json_error(admin.get("/api/me", bob_token), 401)
    assert admin.json("PATCH", f"/api/admin/users/{BOB}", {"disabled": False}, t).json()["disabled"] is False
    assert login(admin, BOB, PASSWORD) is not None


def test_flags_must_be_booleans_not_truthy_strings(admin: Admin) -> None:
    t = admin.token()
    for body in ({"admin": "false"}, {"disabled": "no"}, {"admin": 1}):
        assert_json_error(admin.json("PATCH", f"/api/admin/users/{BOB}", body, t), 400, "invalid_request")
    bob = admin.registry.db.sync.run("u", accounts.get_user, BOB)
    assert not bob.is_admin and not bob.disabled


def test_an_admin_cannot_lock_themselves_out(admin: Admin) -> None:
    t = admin.token()
    for body in ({"disabled": True}, {"admin": False}):
        assert_json_error(admin.json("PATCH", f"/api/admin/users/{ALICE}", body, t), 409, "cannot_change_self")
    me = admin.registry.db.sync.run("u", accounts.get_user, ALICE)
    assert me.is_admin and not me.disabled


def test_quota_and_usage_per_user(admin: Admin) -> None:
    t = admin.token()
    assert admin.json("PATCH", f"/api/admin/users/{BOB}", {"quota_bytes": 5 * 2**30}, t).status == 200
    detail = admin.get(f"/api/admin/users/{BOB}", t).json()
    assert detail["quota_bytes"] == detail["effective_quota_bytes"] == 5 * 2**30
    assert detail["used_bytes"] == detail["mail_bytes"] + detail["file_bytes"] == 0 and detail["totp"] is False
    quotas = {q["address"]: q for q in admin.get("/api/admin/quotas", t).json()["items"]}
    assert quotas[BOB]["quota_bytes"] == 5 * 2**30
    for bad in (-1, "5G", 1.5):
        assert_json_error(admin.json("PATCH", f"/api/admin/users/{BOB}", {"quota_bytes": bad}, t), 400, "invalid_quota")
    assert admin.json("PATCH", f"/api/admin/users/{BOB}", {"quota_bytes": None}, t).json()["quota_bytes"] is None
    assert_json_error(admin.get("/api/admin/users/nobody@example.test", t), 404, "user_not_found")


def test_the_admin_flag_grants_and_takes_the_admin_api(admin: Admin) -> None:
    t = admin.token()
    assert admin.json("PATCH", f"/api/admin/users/{BOB}", {"admin": True}, t).json()["admin"] is True
    bob = admin.client.post_form("/oauth2/token", {"grant_type": "password", "username": BOB, "password": PASSWORD,
                                                   "scope": "admin"}).json()["access_token"]
    assert admin.get("/api/admin/users", bob).status == 200
    assert admin.json("PATCH", f"/api/admin/users/{BOB}", {"admin": False}, t).json()["admin"] is False
    fresh = admin.token(BOB)
    assert_json_error(admin.get("/api/admin/users", fresh), 403, "forbidden")


def test_reset_2fa_turns_it_off_and_ends_the_users_sessions(admin: Admin) -> None:
    t = admin.token()
    bob_token = admin.token(BOB)
    db = admin.registry.db.sync
    db.run("2fa", totp.begin, admin.registry.keys, BOB, True)
    assert {u["address"]: u["totp"] for u in admin.get("/api/admin/users", t).json()["items"]}[BOB] is True
    r = admin.json("DELETE", f"/api/admin/users/{BOB}/2fa", {}, t)
    assert r.status == 200 and r.json() == {"enabled": False, "was_enabled": True}
    assert not db.run("on", totp.is_enabled, db.run("u", accounts.get_user, BOB).id)
    assert_json_error(admin.get("/api/me", bob_token), 401)
    assert login(admin, BOB, PASSWORD) is not None  # the password alone works again
    assert admin.json("DELETE", f"/api/admin/users/{BOB}/2fa", {}, t).json()["was_enabled"] is False


def test_app_passwords_are_listed_without_secrets_and_revoked(admin: Admin) -> None:
    t = admin.token()
    keys, db = admin.registry.keys, admin.registry.db.sync
    secret = "abcde-fghjk-mnpqr-stuvw-xyz23"
    app_id = db.run("app", accounts.add_app_password, BOB, "phone", keys.mac("app-password", secret))
    other = db.run("app", accounts.add_app_password, ALICE, "laptop", keys.mac("app-password", secret + "x"))
    assert login(admin, BOB, secret) is not None
    listing = admin.get(f"/api/admin/users/{BOB}/app-passwords", t)
    assert [i["name"] for i in listing.json()["items"]] == ["phone"] and secret.encode() not in listing.body
    assert [a["id"] for a in admin.get(f"/api/admin/users/{BOB}", t).json()["app_passwords"]] == [app_id]
    # another user's app password is not reachable through bob's address
    assert_json_error(admin.json("DELETE", f"/api/admin/users/{BOB}/app-passwords/{other}", {}, t), 404,
                      "app_password_not_found")
    assert admin.json("DELETE", f"/api/admin/users/{BOB}/app-passwords/{app_id}", {}, t).status == 204
    assert login(admin, BOB, secret) is None
    assert admin.get(f"/api/admin/users/{BOB}/app-passwords", t).json()["items"] == []
    assert_json_error(admin.json("DELETE", f"/api/admin/users/{BOB}/app-passwords/x", {}, t), 404)


def test_aliases_and_catch_alls(admin: Admin) -> None:
    t = admin.token()
    for address, destination in (("info@example.test", BOB), ("@example.test", ALICE)):
        r = admin.json("POST", "/api/admin/aliases", {"address": address, "destination": destination}, t)
        assert r.status == 201
    resolve = lambda a: admin.registry.db.sync.run("r", accounts.resolve_recipient, a)  # noqa: E731
    assert resolve("info@example.test") == [BOB] and resolve("anything@example.test") == [ALICE]
    assert resolve(BOB) == [BOB]  # a real account is not swallowed by the catch-all
    assert_json_error(admin.json("POST", "/api/admin/aliases", {"address": "x@example.test",
                                                                "destination": "ghost@example.test"}, t), 404)
    assert admin.json("DELETE", "/api/admin/aliases/@example.test", {}, t).status == 204
    assert resolve("anything@example.test") == []


def test_dkim_key_for_a_new_domain_gives_the_txt_to_publish(admin: Admin) -> None:
    t = admin.token()
    assert admin.json("POST", "/api/admin/domains", {"name": "Other.Test"}, t).status == 201
    r = admin.json("POST", "/api/admin/domains/other.test/dkim", {"algorithm": "ed25519"}, t)
    assert r.status == 201, r.body
    key = r.json()
    assert key["name"] == "tau-ed._domainkey.other.test." and key["txt"].startswith("v=DKIM1; k=ed25519; p=")
    rsa = admin.json("POST", "/api/admin/domains/other.test/dkim", {}, t).json()
    assert rsa["txt"].startswith("v=DKIM1; k=rsa; p=") and rsa["value"].count('"') >= 4  # split in 250-octet strings
    listed = admin.get("/api/admin/domains/other.test/dkim", t).json()["items"]
    assert {k["txt"] for k in listed} == {key["txt"], rsa["txt"]}
    assert_json_error(admin.json("POST", "/api/admin/domains/other.test/dkim", {"algorithm": "ed25519"}, t), 409,
                      "dkim_key_exists")
    for body in ({"algorithm": "dsa"}, {"selector": "../../etc"}, {"selector": 5}):
        assert_json_error(admin.json("POST", "/api/admin/domains/other.test/dkim", body, t), 400)
    assert_json_error(admin.json("POST", "/api/admin/domains/nowhere.test/dkim", {}, t), 404, "domain_not_found")
    assert_json_error(admin.get("/api/admin/domains/a..b/dkim", t), 400)
    dns = admin.get("/api/admin/domains/other.test/dns", t).json()
    names = {(i["name"], i["type"]) for i in dns["items"]}
    assert ("other.test.", "MX") in names and ("tau-ed._domainkey.other.test.", "TXT") in names
    assert dns["live"] is False and "status" not in dns["items"][0]


@pytest.fixture
def dns_admin(tmp_path: Path, db_url: str) -> Iterator[Admin]:
    peer = RemotePeer(tmp_path / "peer", {"example.test": [["MX", 10, "localhost"], ["TXT", "v=spf1 a ~all"]]}).start()
    registry = make_registry(tmp_path / "tau", db_url, outbound={"resolver": f"127.0.0.1:{peer.dns_port}"})
    add_user(registry, ALICE, PASSWORD, fast_hash=True, is_admin=True)
    yield Admin(registry)
    registry.db.close()
    peer.stop()


def test_live_dns_check_says_per_record_what_is_published(dns_admin: Admin) -> None:
    t = dns_admin.token()
    body = dns_admin.get("/api/admin/domains/example.test/dns?live=1", t).json()
    found = {(i["name"], i["type"]): (i["status"], i["detail"]) for i in body["items"]}
    assert found[("example.test.", "MX")] == ("ok", "published")
    assert found[("example.test.", "TXT")][0] == "warn"            # the operator's own SPF: a warning
    assert found[("_dmarc.example.test.", "TXT")] == ("FAIL", "missing")
    assert body["live"] is True and body["failing"] == sum(1 for s, _ in found.values() if s == "FAIL") > 0


def test_failed_and_throttled_logins_and_admin_actions_are_security_events(admin: Admin) -> None:
    t = admin.token()
    for _ in range(7):
        login(admin, BOB, "wrong-password")
    with capturedLogs() as logged:  # (a non-admin is refused by the scope check before any handler)
        admin.json("POST", "/api/admin/domains", {"name": "third.test"}, t)
        admin.json("POST", "/api/admin/domains", {"name": "third.test"}, t)  # 409: audited as well
    audit = [e for e in logged if e.get("log_format", "").startswith("admin_audit")]
    assert [(e["actor"], e["action"], e["path"], e["status"]) for e in audit] == [
        (ALICE, "POST", "/api/admin/domains", 201), (ALICE, "POST", "/api/admin/domains", 409)]
    assert b"secret" not in repr(audit).encode()
    events = admin.get("/api/admin/security-events", t).json()["items"]
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["admin_action"] * 2 and "login_throttled" in kinds and kinds.count("login_failed") >= 5
    failed = next(e for e in events if e["kind"] == "login_failed")
    assert failed["account"] == BOB and failed["ip"] == "192.0.2.9" and failed["at"] > 0
    only = admin.get("/api/admin/security-events?kind=login_throttled&limit=1", t).json()["items"]
    assert len(only) == 1 and only[0]["kind"] == "login_throttled"
    assert_json_error(admin.get("/api/admin/security-events?limit=x", t), 400)


def test_the_event_store_is_bounded(admin: Admin) -> None:
    for i in range(2000):
        admin.registry.throttle.events.record("login_failed", account=f"u{i}@example.test", ip="192.0.2.1")
    events = admin.registry.throttle.events.recent(10_000)
    assert len(events) == 500 and events[0]["account"] == "u1999@example.test"


def test_a_silent_dns_server_is_asked_once_not_once_per_record(tmp_path: Path, db_url: str) -> None:
    import time

    from tests.support.daemon import free_port

    registry = make_registry(tmp_path / "tau", db_url, outbound={"resolver": f"127.0.0.1:{free_port()}"})
    add_user(registry, ALICE, PASSWORD, fast_hash=True, is_admin=True)
    admin = Admin(registry)
    started = time.monotonic()
    items = admin.get("/api/admin/domains/example.test/dns?live=1", admin.token()).json()["items"]
    assert time.monotonic() - started < 12
    assert all(i["status"] == "FAIL" for i in items)
    assert {i["detail"] for i in items[1:]} == {"not checked: the DNS server did not answer"}, items[:3]
    registry.db.close()


def test_every_state_changing_admin_route_is_audited(admin: Admin) -> None:
    """A route added later without ``tau.admin.audit.route`` fails here."""
    admin_routes = [r for r in admin.host.http.router.routes if r.pattern.startswith("/api/admin/")]
    changing = [r for r in admin_routes if r.method not in ("GET", "HEAD")]
    assert len(changing) >= 19  # users, domains, aliases, queue, OAuth clients, DAV locks
    unaudited = [f"{r.method} {r.pattern}" for r in changing if "audited" not in r.handler.__qualname__]
    assert not unaudited


def test_rate_limited_sources_are_one_event_per_minute(tmp_path: Path, db_url: str) -> None:
    registry = make_registry(tmp_path / "tau", db_url, limits={"requests_per_minute_ip": "3"})
    add_user(registry, ALICE, PASSWORD, fast_hash=True, is_admin=True)
    admin = Admin(registry)
    statuses = [admin.client.get("/api/health", ip="198.51.100.7").status for _ in range(20)]
    assert statuses.count(429) >= 15
    limited = [e for e in registry.throttle.events.recent(500) if e["kind"] == "rate_limited"]
    assert [(e["scope"], e["source"]) for e in limited] == [("ip", "198.51.100.7")]
    registry.reactor.advance(61)
    admin.client.get("/api/health", ip="198.51.100.7")
    admin.client.get("/api/health", ip="198.51.100.7")
    admin.client.get("/api/health", ip="198.51.100.7")
    admin.client.get("/api/health", ip="198.51.100.7")
    assert len([e for e in registry.throttle.events.recent(500) if e["kind"] == "rate_limited"]) == 2
    registry.db.close()
