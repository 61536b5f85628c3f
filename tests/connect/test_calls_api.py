"""``/api/calls`` and the call life cycle (joins, leaves, declines, PATCH) on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tau.connect.calls import Identity
from tau.connect.store import CallError
from tests.support.harness import resolve
from tests.support.http import assert_json_error


def who(app, name: str) -> Identity:
    user = resolve(app.registry.users.get(f"{name}@example.test"))
    return Identity.of_user(user)


def create(app, *others, **extra) -> dict:
    answer = app.call("alice", "POST", "/api/calls",
                      {"title": "Planning", "participants": [f"{o}@example.test" for o in others], **extra})
    assert answer.status == 201, answer.body
    return answer.json()


def test_create_answers_the_contract(app):
    call = create(app, "bob", scheduled_for="2030-01-02T03:04:05+01:00")
    assert call["status"] == "ringing" and call["mode"] == "p2p" and call["host"] == "alice@example.test"
    assert call["join_url"] == f"https://localhost/call/{call['id']}" and len(call["id"]) >= 16
    assert set(call["turn"]) == {"uris", "username", "credential", "ttl"}
    assert call["scheduled_for"] == "2030-01-02T02:04:05Z"
    assert [(p["user"], p["role"], p["state"]) for p in call["participants"]] == [
        ("alice@example.test", "host", "invited"), ("bob@example.test", "member", "invited")]
    topic, event = app.events[0]
    assert topic == "call.updated" and event["kind"] == "created" and "turn" not in event["call"]
    assert sorted(event["audience"]) == ["alice@example.test", "bob@example.test"]
    group = create(app, "bob", "carol")
    assert group["mode"] == "sfu" and group["sfu"] == "unavailable"  # no media server in this app
    assert create(app, "bob", mode="sfu")["mode"] == "sfu"


@pytest.mark.parametrize("body, error", [
    ({"title": 5}, "invalid_request"), ({"participants": "bob"}, "invalid_request"),
    ({"participants": ["not an address"]}, "invalid_participant"),
    ({"participants": ["ghost@example.test"]}, "unknown_participant"),
    ({"participants": [{"guest": ""}]}, "invalid_participant"), ({"mode": "mesh"}, "invalid_request"),
    ({"scheduled_for": "tomorrow"}, "invalid_request"), ({"scheduled_for": "2030-01-01T10:00:00"}, "invalid_request"),
    ({"participants": ["b@x.example"] * 101}, "invalid_request")])
def test_bad_create_requests(app, body, error):
    assert_json_error(app.call("alice", "POST", "/api/calls", body), 400, error)


def test_without_a_media_server_offers_to_the_sfu_are_refused(app):
    with pytest.raises(CallError) as refused:
        app.calls.media.handle("call", "p1", {"type": "offer", "sdp": "v=0"})
    assert refused.value.code == "sfu_unavailable" and refused.value.status == 503


def test_only_participants_see_a_call_and_only_the_host_changes_it(app):
    call = create(app, "bob")
    path = f"/api/calls/{call['id']}"
    assert app.call("bob", "GET", path).json()["turn"]["uris"] == []
    assert_json_error(app.call("mallory", "GET", path), 404, "call_not_found")
    assert_json_error(app.call("mallory", "PATCH", path, {"title": "mine"}), 404, "call_not_found")
    assert_json_error(app.call("bob", "PATCH", path, {"title": "mine"}), 403, "not_host")
    assert_json_error(app.call("alice", "PATCH", path, {"status": "paused"}), 400, "invalid_status")
    assert_json_error(app.http.request("GET", path), 401)
    changed = app.call("alice", "PATCH", path, {"title": "Renamed", "add_participants": ["carol@example.test"],
                                                "remove_participants": ["bob@example.test"]}).json()
    assert changed["title"] == "Renamed" and [p["user"] for p in changed["participants"]] == [
        "alice@example.test", "carol@example.test"]
    assert_json_error(app.call("bob", "GET", path), 404)
    assert app.call("alice", "PATCH", path, {"status": "ended"}).json()["status"] == "ended"
    assert_json_error(app.call("alice", "PATCH", path, {"title": "again"}), 409, "call_ended")


def test_joins_and_leaves_drive_the_status(app):
    call = create(app, "bob")
    alice, bob, mallory = who(app, "alice"), who(app, "bob"), who(app, "mallory")
    with pytest.raises(CallError) as refused:
        resolve(app.calls.join(mallory, call["id"], "m1"))
    assert refused.value.code == "call_not_found"
    first = resolve(app.calls.join(alice, call["id"], "a1"))
    assert first["call"]["status"] == "ringing" and len(first["participants"]) == 1
    second = resolve(app.calls.join(bob, call["id"], "b1"))
    assert second["call"]["status"] == "active" and len(second["participants"]) == 2
    rosters = [e["roster"] for t, e in app.events if t == "signal.frame" and "roster" in e]
    assert [len(r) for r in rosters] == [1, 2]
    again = resolve(app.calls.join(bob, call["id"], "b2"))  # reconnect: same participant, old session replaced
    assert again["me"]["id"] == second["me"]["id"]
    assert any(e.get("replace") == {"participant": again["me"]["id"], "conn": "b2"} for _, e in app.events)
    resolve(app.calls.leave(call["id"], again["me"]["id"], "b1", explicit=True))  # stale session: no effect
    assert app.call("alice", "GET", f"/api/calls/{call['id']}").json()["status"] == "active"
    resolve(app.calls.leave(call["id"], again["me"]["id"], "b2", explicit=True))
    resolve(app.calls.leave(call["id"], first["me"]["id"], "a1", explicit=True))
    detail = app.call("alice", "GET", f"/api/calls/{call['id']}").json()
    assert detail["status"] == "ended" and detail["started_at"] and detail["ended_at"]
    with pytest.raises(CallError) as ended:
        resolve(app.calls.join(bob, call["id"], "b3"))
    assert ended.value.code == "call_ended"


def test_a_dropped_connection_ends_the_call_only_after_the_grace_period(app):
    call = create(app, "bob")
    alice, bob = who(app, "alice"), who(app, "bob")
    a = resolve(app.calls.join(alice, call["id"], "a1"))
    b = resolve(app.calls.join(bob, call["id"], "b1"))
    resolve(app.calls.leave(call["id"], a["me"]["id"], "a1", explicit=False))
    resolve(app.calls.leave(call["id"], b["me"]["id"], "b1", explicit=False))
    assert app.call("alice", "GET", f"/api/calls/{call['id']}").json()["status"] == "active"
    resolve(app.calls.join(bob, call["id"], "b2"))  # bob is back in time
    app.registry.reactor.advance(app.calls.grace + 1)
    assert app.call("alice", "GET", f"/api/calls/{call['id']}").json()["status"] == "active"
    resolve(app.calls.leave(call["id"], b["me"]["id"], "b2", explicit=False))
    app.registry.reactor.advance(app.calls.grace + 1)
    assert app.call("alice", "GET", f"/api/calls/{call['id']}").json()["status"] == "ended"


def test_decline_ends_a_one_to_one_call_but_not_a_group_call(app):
    one = create(app, "bob")
    resolve(app.calls.decline(who(app, "bob"), one["id"]))
    assert app.call("alice", "GET", f"/api/calls/{one['id']}").json()["status"] == "ended"
    group = create(app, "bob", "carol")
    resolve(app.calls.decline(who(app, "bob"), group["id"]))
    assert app.call("alice", "GET", f"/api/calls/{group['id']}").json()["status"] == "ringing"
    with pytest.raises(CallError):
        resolve(app.calls.decline(who(app, "alice"), group["id"]))


def test_guests_get_a_link_once_and_only_their_call(app):
    from tau.connect.calls import guest_identity

    call = create(app, "bob")
    added = app.call("alice", "PATCH", f"/api/calls/{call['id']}",
                     {"add_participants": [{"guest": "Visitor"}, "partner@elsewhere.example"]}).json()
    links = added["guests"]
    assert [g["name"] for g in links] == ["Visitor", "partner@elsewhere.example"]
    assert "guests" not in app.call("alice", "GET", f"/api/calls/{call['id']}").json()
    guest = resolve(guest_identity(app.calls, links[0]["join_url"].split("guest=")[1]))
    assert guest.guest_call == call["id"] and guest.user_id is None and guest.name == "Visitor"
    joined = resolve(app.calls.join(guest, call["id"], "g1"))
    assert joined["me"]["id"] == links[0]["participant_id"] and joined["ice_servers"] == []
    other = create(app, "carol")
    with pytest.raises(CallError):
        resolve(app.calls.join(guest, other["id"], "g2"))
    assert resolve(guest_identity(app.calls, "x" * 32)) is None


def test_history_is_paginated_and_private(app):
    ids = [create(app, "bob")["id"] for _ in range(5)]
    app.registry.reactor.advance(1)
    seen, cursor = [], None
    while True:
        page = app.call("bob", "GET", "/api/calls?limit=2" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    assert app.call("mallory", "GET", "/api/calls").json() == {"items": [], "next_cursor": None}
    assert app.call("bob", "GET", "/api/calls?status=ended").json()["items"] == []
    assert_json_error(app.call("bob", "GET", "/api/calls?cursor=zzz"), 400, "invalid_cursor")
    assert_json_error(app.call("bob", "GET", "/api/calls?status=lost"), 400, "invalid_query")


def test_the_call_page_is_served_with_a_strict_policy(app):
    page = app.http.get("/call/anything")
    assert page.status == 200 and page.header("content-type").startswith("text/html")
    assert "script-src 'self'" in page.header("content-security-policy") and b"/call/assets/call.js" in page.body
    script = app.http.get("/call/assets/call.js")
    assert script.status == 200 and b"/ws/signal" in script.body
    assert app.http.get("/call/assets/../../secret").status == 404
    assert app.http.get("/call/assets/other.js").status == 404


def test_patch_status_moves_forward_only(app):
    """Issue 20: a participant may set a ringing call active; ended is final (ended → ringing: 409)."""
    call = create(app, "bob", "carol")
    path = f"/api/calls/{call['id']}"
    assert_json_error(app.call("bob", "PATCH", path, {"status": "ended"}), 403, "not_host")
    assert_json_error(app.call("bob", "PATCH", path, {"status": "active", "title": "x"}), 403, "not_host")
    active = app.call("bob", "PATCH", path, {"status": "active"})
    assert active.status == 200 and active.json()["status"] == "active" and active.json()["started_at"]
    assert app.call("carol", "PATCH", path, {"status": "active"}).json()["status"] == "active"  # no change
    assert_json_error(app.call("alice", "PATCH", path, {"status": "ringing"}), 409, "invalid_transition")
    assert [(e["kind"], e["call"]["status"]) for t, e in app.events if t == "call.updated"][:2] == [
        ("created", "ringing"), ("status", "active")]
    assert app.call("alice", "PATCH", path, {"status": "ended"}).json()["status"] == "ended"
    for status in ("ringing", "active"):
        assert_json_error(app.call("alice", "PATCH", path, {"status": status}), 409, "call_ended")
    assert app.call("alice", "PATCH", path, {"status": "ended"}).status == 200  # ending twice is no change
