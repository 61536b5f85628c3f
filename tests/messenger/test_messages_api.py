"""POST/GET /api/messages, conversations and receipts through the real router (no sockets)."""

from __future__ import annotations

import pytest

from tau.client.device import DeviceState


def _envelope(user: str, device: int, text: str = "AAAA", **extra) -> dict:
    return {"user": user, "device_id": device, "ciphertext": text, **extra}


def test_plaintext_direct_conversation_and_history(app, events):
    sent = app.call("alice", "POST", "/api/messages", {"to": "bob@example.test", "body": "hi bob"})
    assert sent.status == 201, sent.body
    conv = sent.json()["conversation"]
    assert sent.json()["timestamp"].endswith("Z")
    again = app.call("alice", "POST", "/api/messages", {"to": "BOB@example.test", "body": "again"}).json()
    assert again["conversation"] == conv and int(again["id"]) > int(sent.json()["id"])
    items = app.call("bob", "GET", f"/api/messages?conversation={conv}").json()["items"]
    assert [(i["from"], i["body"], i["encrypted"]) for i in items] == [
        ("alice@example.test", "hi bob", False), ("alice@example.test", "again", False)]
    info = app.call("bob", "GET", f"/api/conversations/{conv}").json()
    assert info["kind"] == "direct" and info["encrypted"] is False
    assert info["members"] == ["alice@example.test", "bob@example.test"]
    created = [e for t, e in events if t == "message.created"]
    # neither user has a registered device: the keyless device 0 of bob gets it
    assert [list(d) for d in created[0]["deliveries"]] == [["bob@example.test", 0, None]]


def test_third_user_sees_nothing(app):
    sent = app.call("alice", "POST", "/api/messages", {"to": "bob@example.test", "body": "private"})
    conv = sent.json()["conversation"]
    for method, path, body in [("GET", f"/api/messages?conversation={conv}", None),
                               ("GET", f"/api/conversations/{conv}", None),
                               ("POST", "/api/messages", {"conversation": conv, "body": "let me in"}),
                               ("PATCH", f"/api/conversations/{conv}", {"add": ["carol@example.test"]}),
                               ("POST", "/api/messages/receipts", {"conversation": conv, "kind": "read", "ids": [1]})]:
        answer = app.call("carol", method, path, body)
        assert answer.status == 404 and answer.json()["error"] == "conversation_not_found", (method, path)
    assert app.call("carol", "GET", "/api/messages").json()["items"] == []
    assert app.http.get(f"/api/messages?conversation={conv}").status == 401


def test_device_mismatch_lists_missing_extra_and_stale(app):
    app.register("alice", 1)
    app.register("alice", 2)
    app.register("bob", 1)
    app.register("bob", 2)
    base = {"to": "bob@example.test", "device_id": 1}
    answer = app.call("alice", "POST", "/api/messages",
                      {**base, "envelopes": [_envelope("bob@example.test", 1), _envelope("bob@example.test", 9),
                                             _envelope("carol@example.test", 1)]})
    assert answer.status == 409
    body = answer.json()
    assert body["error"] == "device_mismatch"
    assert body["missing"] == [{"user": "alice@example.test", "device_id": 2},
                               {"user": "bob@example.test", "device_id": 2}]
    assert body["extra"] == [{"user": "bob@example.test", "device_id": 9},
                             {"user": "carol@example.test", "device_id": 1}]
    bundle = app.call("alice", "GET", "/api/keys/bob@example.test?device_id=1").json()["devices"][0]
    full = [_envelope("alice@example.test", 2), _envelope("bob@example.test", 2),
            _envelope("bob@example.test", 1, registration_id=bundle["registration_id"] + 1)]
    stale = app.call("alice", "POST", "/api/messages", {**base, "envelopes": full})
    assert stale.status == 410 and stale.json()["stale"] == [{"user": "bob@example.test", "device_id": 1}]
    full[2]["registration_id"] = bundle["registration_id"]
    ok = app.call("alice", "POST", "/api/messages", {**base, "envelopes": full})
    assert ok.status == 201, ok.body
    # nothing was stored for the refused attempts
    assert len(app.call("bob", "GET", "/api/messages").json()["items"]) == 1


def test_encrypted_and_plaintext_conversations_do_not_mix(app):
    app.register("alice", 1)
    app.register("bob", 1)
    enc = app.call("alice", "POST", "/api/messages", {"to": "bob@example.test", "device_id": 1,
                                                      "envelopes": [_envelope("bob@example.test", 1)]}).json()
    plain = app.call("alice", "POST", "/api/messages", {"to": "bob@example.test", "body": "x"}).json()
    assert enc["conversation"] != plain["conversation"]
    wrong = app.call("alice", "POST", "/api/messages", {"conversation": enc["conversation"], "body": "x"})
    assert wrong.status == 400 and wrong.json()["error"] == "conversation_encrypted"
    wrong = app.call("alice", "POST", "/api/messages", {"conversation": plain["conversation"], "envelopes": []})
    assert wrong.json()["error"] == "conversation_not_encrypted"
    for bad in [{"to": "bob@example.test"}, {"body": "no target"}, {"to": "nobody@example.test", "body": "x"},
                {"to": "bob@example.test", "body": 5}, {"conversation": "x", "body": "y"},
                {"to": "bob@example.test", "device_id": 1, "envelopes": [_envelope("bob@example.test", 1, "%%%")]},
                {"to": "bob@example.test", "device_id": 77, "envelopes": []},
                {"to": "bob@example.test", "body": "x", "attachments": [{"name": "no id"}]}]:
        answer = app.call("alice", "POST", "/api/messages", bad)
        assert answer.status in (400, 404), (bad, answer.body)


def test_queue_ack_receipts_and_pagination(app):
    app.register("alice", 1)
    bob = app.register("bob", 1)
    ids = []
    for n in range(5):
        envelopes = [_envelope("bob@example.test", 1, f"QUFB{n}A==")]
        sent = app.call("alice", "POST", "/api/messages", {"to": "bob@example.test", "device_id": 1,
                                                           "envelopes": envelopes})
        ids.append(sent.json()["id"])
    conv = sent.json()["conversation"]
    page1 = app.call("bob", "GET", f"/api/messages?conversation={conv}&limit=3&device_id=1").json()
    assert [i["id"] for i in page1["items"]] == ids[:3] and page1["next_cursor"]
    assert all("envelope" in i for i in page1["items"])
    path = f"/api/messages?conversation={conv}&limit=3&device_id=1&cursor={page1['next_cursor']}"
    page2 = app.call("bob", "GET", path).json()
    assert [i["id"] for i in page2["items"]] == ids[3:] and page2["next_cursor"] is None
    since = app.call("bob", "GET", f"/api/messages?conversation={conv}&since={ids[3]}").json()["items"]
    assert [i["id"] for i in since] == ids[4:]
    assert app.call("bob", "POST", "/api/messages/ack", {"device_id": bob.device_id, "ids": ids[:2]}).status == 200
    after = app.call("bob", "GET", f"/api/messages?conversation={conv}&device_id=1").json()["items"]
    assert ["envelope" in i for i in after] == [False, False, True, True, True]
    read = {"conversation": conv, "kind": "read", "ids": [ids[0]]}
    assert app.call("bob", "POST", "/api/messages/receipts", read).status == 200
    mine = app.call("alice", "GET", f"/api/messages?conversation={conv}").json()["items"]
    assert mine[0]["receipts"] == {"delivered": ["bob@example.test"], "read": ["bob@example.test"]}
    assert mine[1]["receipts"] == {"delivered": ["bob@example.test"], "read": []}
    assert "receipts" not in mine[2]
    assert app.call("bob", "GET", "/api/messages?cursor=bogus").status == 400
    assert app.call("bob", "GET", "/api/messages?since=yesterday").status == 400


def test_group_membership_changes(app, events):
    created = app.call("alice", "POST", "/api/conversations",
                       {"kind": "group", "title": "team", "members": ["bob@example.test"], "encrypted": False})
    assert created.status == 201
    conv = created.json()
    assert conv["members"] == ["alice@example.test", "bob@example.test"] and conv["admins"] == ["alice@example.test"]
    # bob (not an admin) may add carol, but not remove alice
    added = app.call("bob", "PATCH", f"/api/conversations/{conv['id']}", {"add": ["carol@example.test"]})
    assert added.json()["members"] == ["alice@example.test", "bob@example.test", "carol@example.test"]
    denied = app.call("bob", "PATCH", f"/api/conversations/{conv['id']}", {"remove": ["alice@example.test"]})
    assert denied.status == 403
    app.call("carol", "POST", "/api/messages", {"conversation": conv["id"], "body": "hello team"})
    removed = app.call("alice", "PATCH", f"/api/conversations/{conv['id']}", {"remove": ["carol@example.test"]})
    assert removed.json()["members"] == ["alice@example.test", "bob@example.test"]
    assert app.call("carol", "GET", f"/api/messages?conversation={conv['id']}").status == 404
    left = app.call("alice", "PATCH", f"/api/conversations/{conv['id']}", {"remove": ["alice@example.test"]})
    assert left.status == 200 and left.json()["admins"] == ["bob@example.test"]
    audiences = [e["audience"] for t, e in events if t == "message.conversation"]
    assert "carol@example.test" in audiences[2]  # the removed member is told too
    listing = app.call("bob", "GET", "/api/conversations").json()
    assert [c["id"] for c in listing["items"]] == [conv["id"]]


@pytest.mark.parametrize("title", ["a\x00b", "line\nbreak", "x" * 201, 42])
def test_hostile_conversation_titles_are_refused_with_400(app, title):
    created = app.call("alice", "POST", "/api/conversations",
                       {"kind": "group", "title": title, "members": ["bob@example.test"], "encrypted": False})
    # a NUL is already refused by the JSON reader (invalid_json), the rest by the messenger
    assert created.status == 400 and created.json()["error"] in ("invalid_request", "invalid_json")
    conv = app.call("alice", "POST", "/api/conversations",
                    {"kind": "group", "title": "ok", "members": ["bob@example.test"], "encrypted": False}).json()
    renamed = app.call("alice", "PATCH", f"/api/conversations/{conv['id']}", {"title": title})
    assert renamed.status == 400
    assert app.call("bob", "GET", "/api/conversations").json()["items"][0]["title"] == "ok"


def test_presence_rest_and_visibility(app):
    app.call("alice", "POST", "/api/messages", {"to": "bob@example.test", "body": "hi"})
    from tests.support.harness import resolve

    resolve(app.messenger.presence.connected("bob@example.test", "c1"))
    items = app.call("alice", "GET", "/api/presence?users=bob@example.test,carol@example.test").json()["items"]
    assert [(i["user"], i["status"]) for i in items] == [("bob@example.test", "online")]  # carol is no contact
    assert app.call("bob", "PUT", "/api/presence", {"status": "busy"}).status == 200
    assert app.call("alice", "GET", "/api/presence?users=bob@example.test").json()["items"][0]["status"] == "busy"
    assert app.call("bob", "PUT", "/api/presence", {"status": "asleep"}).json()["error"] == "invalid_status"
    assert app.call("bob", "PUT", "/api/presence", {"status": "offline"}).status == 200  # appear offline: no lease
    resolve(app.messenger.presence.disconnected("bob@example.test", "c1"))
    item = app.call("alice", "GET", "/api/presence?users=bob@example.test").json()["items"][0]
    assert item["status"] == "offline" and item["last_seen"].endswith("Z")
    mine = app.call("carol", "GET", "/api/presence").json()["items"]
    assert mine == [{"user": "carol@example.test", "status": "offline", "last_seen": None}]


def _bob_seen_by_alice(app) -> dict:
    return app.call("alice", "GET", "/api/presence?users=bob@example.test").json()["items"][0]


def test_presence_set_over_rest_holds_without_a_socket_for_its_ttl(app, events):
    """Issue 20: a REST-only client is what it says it is while it uses the API; then offline."""
    from tau.messenger.presence import REST_TTL

    clock = app.registry.clock
    app.call("alice", "POST", "/api/messages", {"to": "bob@example.test", "body": "hi"})
    app.call("bob", "GET", "/api/messages")  # API activity alone makes nobody present
    assert _bob_seen_by_alice(app)["status"] == "offline"
    assert app.call("bob", "PUT", "/api/presence", {"status": "busy"}).status == 200
    seen = _bob_seen_by_alice(app)
    assert seen["status"] == "busy" and seen["last_seen"].endswith("Z")
    pushed = [e for t, e in events if t == "presence.changed"]
    assert pushed[-1]["status"] == "busy" and "alice@example.test" in pushed[-1]["audience"]  # sockets see it
    for _ in range(3):  # activity renews the lease: well past one TTL and still busy
        clock.advance(REST_TTL * 0.8)
        assert app.call("bob", "GET", "/api/messages").status == 200
    assert _bob_seen_by_alice(app)["status"] == "busy"
    last = _bob_seen_by_alice(app)["last_seen"]
    clock.advance(REST_TTL + 2)  # silence: the lease runs out, announced like a socket closing
    gone = _bob_seen_by_alice(app)
    assert gone["status"] == "offline" and gone["last_seen"] == last
    assert [e["status"] for t, e in events if t == "presence.changed"][-1] == "offline"


def test_device_state_round_trip():
    state = DeviceState("alice@example.test", 5)
    state.upload(3)
    again = DeviceState.from_dict(state.to_dict())
    assert again.upload(0)["identity_key"] == state.upload(0)["identity_key"]
    assert sorted(again.one_time) == [1, 2, 3]
