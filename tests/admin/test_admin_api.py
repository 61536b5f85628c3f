"""``/api/admin/*``: admins manage accounts and the queue; everyone else gets 403 JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.http import assert_json_error

ENDPOINTS = [("GET", "/api/admin/users"), ("POST", "/api/admin/users"), ("GET", "/api/admin/domains"),
             ("GET", "/api/admin/aliases"), ("GET", "/api/admin/quotas"), ("GET", "/api/admin/queue"),
             ("POST", "/api/admin/queue/1/retry"), ("DELETE", "/api/admin/queue/1"), ("GET", "/api/admin/health"),
             ("DELETE", "/api/admin/users/alice@example.test"), ("PATCH", "/api/admin/users/alice@example.test")]


def test_non_admins_get_403_and_anonymous_401(admin: Any) -> None:
    bob = admin.token("bob@example.test")
    for method, path in ENDPOINTS:
        assert_json_error(admin.json(method, path, {}, token=bob), 403, "forbidden")
        assert_json_error(admin.json(method, path, {}), 401)


def test_users_domains_aliases_quotas(admin: Any) -> None:
    t = admin.token()
    users = admin.get("/api/admin/users", t).json()["items"]
    assert [u["address"] for u in users] == ["alice@example.test", "bob@example.test"]
    assert admin.json("POST", "/api/admin/domains", {"name": "Other.Test"}, t).status == 201
    r = admin.json("POST", "/api/admin/users", {"address": "carol@other.test", "password": "carol-Pa55-long",
                                                 "quota_bytes": 1000}, t)
    assert r.status == 201 and r.json()["quota_bytes"] == 1000
    assert_json_error(admin.json("POST", "/api/admin/users", {"address": "carol@other.test",
                                                              "password": "carol-Pa55-long"}, t), 409, "user_exists")
    assert_json_error(admin.json("POST", "/api/admin/users", {"address": "x@other.test", "password": "a"}, t), 400)
    assert admin.token("carol@other.test", "carol-Pa55-long")
    assert admin.json("POST", "/api/admin/aliases", {"address": "info@other.test",
                                                     "destination": "carol@other.test"}, t).status == 201
    assert admin.get("/api/admin/aliases", t).json()["items"] == [{"address": "info@other.test",
                                                                  "destination": "carol@other.test"}]
    r = admin.json("PATCH", "/api/admin/users/carol@other.test", {"disabled": True, "admin": True}, t)
    assert r.json()["disabled"] and r.json()["admin"]
    assert admin.grant("carol@other.test", "carol-Pa55-long").status == 401
    quotas = {q["address"]: q for q in admin.get("/api/admin/quotas", t).json()["items"]}
    assert quotas["carol@other.test"]["quota_bytes"] == 1000 and quotas["alice@example.test"]["used_bytes"] == 0
    assert_json_error(admin.json("DELETE", "/api/admin/domains/other.test", {}, t), 409, "domain_in_use")
    assert admin.json("DELETE", "/api/admin/users/carol@other.test", {}, t).status == 204
    assert_json_error(admin.json("DELETE", "/api/admin/users/alice@example.test", {}, t), 409)
    assert admin.json("DELETE", "/api/admin/domains/other.test", {}, t).status == 204
    assert_json_error(admin.json("DELETE", "/api/admin/users/nobody@example.test", {}, t), 404, "user_not_found")


def _enqueue(registry: Any) -> int:
    from tau.mail.store import queue

    key = registry.blobs.sync.put(b"Subject: q\r\n\r\nqueued\r\n").key
    return int(registry.db.sync.run("q", queue.enqueue, "bob@example.test", "bob@example.test",
                                    ["x@remote.test"], key, 22, None, None))


def test_queue_list_retry_delete(admin: Any) -> None:
    t = admin.token()
    qid = _enqueue(admin.registry)
    later = int(admin.registry.clock.seconds()) + 9999
    admin.registry.db.sync.run("fail", lambda txn: txn.execute(
        "UPDATE outbound_queue SET status = 'failed', next_attempt_at = ? WHERE id = ?", (later, qid)))
    body = admin.get("/api/admin/queue", t).json()
    assert body["counts"] == {"failed": 1} and body["items"][0]["rcpt_to"] == ["x@remote.test"]
    r = admin.json("POST", f"/api/admin/queue/{qid}/retry", {}, t)
    assert r.status == 200 and r.json()["status"] == "queued"
    queued = admin.get("/api/admin/queue?status=queued", t).json()["items"][0]
    assert queued["next_attempt_at"] <= admin.registry.clock.seconds()  # due now, on the server's clock
    assert admin.json("DELETE", f"/api/admin/queue/{qid}", {}, t).status == 204
    assert admin.get("/api/admin/queue", t).json()["items"] == []
    assert admin.registry.db.sync.run("refs", lambda txn: txn.scalar("SELECT COUNT(*) FROM mail_blobs")) == 0
    assert_json_error(admin.json("DELETE", f"/api/admin/queue/{qid}", {}, t), 404)
    assert_json_error(admin.json("POST", "/api/admin/queue/abc/retry", {}, t), 404)


def test_health_and_dashboard_page(admin: Any) -> None:
    t = admin.token()
    body = admin.get("/api/admin/health", t).json()
    assert body["status"] == "ok" and body["services"]["database"] == "ok" and body["queue"] == {}
    page = admin.get("/admin")
    assert page.status == 200 and b"/admin/app.js" in page.body
    assert "script-src 'self'" in page.header("content-security-policy")
    js = admin.get("/admin/app.js")
    assert js.status == 200 and b"/api/admin/queue" in js.body and b"innerHTML" not in js.body


@pytest.mark.parametrize("bad", ["{", "[]", json.dumps({"address": 5, "password": "carol-Pa55-long"})])
def test_hostile_bodies(admin: Any, bad: str) -> None:
    t = admin.token()
    r = admin.client.request("POST", "/api/admin/users", bad.encode(), token=t,
                             headers={"Content-Type": "application/json"})
    assert 400 <= r.status < 500


def test_queue_hold_release_show_and_retry_all(admin: Any) -> None:
    t = admin.token()
    qid = _enqueue(admin.registry)
    r = admin.json("POST", f"/api/admin/queue/{qid}/hold", {}, t)
    assert r.status == 200 and r.json()["state"] == "held"
    body = admin.get("/api/admin/queue", t).json()
    assert body["counts"] == {"held": 1} and body["items"][0]["state"] == "held"
    from tau.mail.store import queue

    now = int(admin.registry.clock.seconds()) + 10
    assert admin.registry.db.sync.run("claim", queue.claim, now, 10, 60) == []      # the worker skips it
    assert admin.get(f"/api/admin/queue/{qid}", t).json()["held"] is True
    assert_json_error(admin.json("POST", "/api/admin/queue/999999/hold", {}, t), 404, "not_found")
    assert admin.json("POST", f"/api/admin/queue/{qid}/release", {}, t).json()["state"] == "queued"
    assert_json_error(admin.json("POST", f"/api/admin/queue/{qid}/release", {}, t), 404, "not_found")
    assert admin.json("POST", "/api/admin/queue/retry", {}, t).json() == {"retried": 1}
    [claimed] = admin.registry.db.sync.run("claim", queue.claim, now, 10, 60)
    assert claimed.id == qid
    assert_json_error(admin.json("POST", f"/api/admin/queue/{qid}/hold", {}, t), 409, "queue_busy")
