"""Key bundles: signature checked on upload, one-time prekeys handed out once, low-prekey signal."""

from __future__ import annotations

import base64
import threading

from tau.client.device import DeviceState
from tau.messenger import keys
from tau.storage.database import SyncDatabase
from tau.storage.engines import create_engine


def test_bundle_round_trip_each_one_time_prekey_once(app):
    app.register("bob", 1, one_time=2)
    app.register("bob", 2, one_time=1)
    first = app.call("alice", "GET", "/api/keys/bob@example.test").json()
    assert first["user"] == "bob@example.test"
    assert [d["device_id"] for d in first["devices"]] == [1, 2]
    assert all(d["one_time_prekey"] is not None for d in first["devices"])
    second = app.call("alice", "GET", "/api/keys/bob@example.test").json()
    assert second["devices"][0]["one_time_prekey"] is not None
    assert second["devices"][1]["one_time_prekey"] is None  # device 2 had one
    third = app.call("carol", "GET", "/api/keys/bob@example.test?device_id=1").json()
    assert [d["device_id"] for d in third["devices"]] == [1]
    assert third["devices"][0]["one_time_prekey"] is None
    handed = [d["one_time_prekey"]["key_id"] for r in (first, second) for d in r["devices"] if d["one_time_prekey"]]
    assert len(handed) == 3
    assert app.call("bob", "GET", "/api/keys").json() == {
        "devices": [{"device_id": 1, "one_time_prekeys": 0}, {"device_id": 2, "one_time_prekeys": 0}]}


def test_forged_signed_prekey_signature_is_refused(app):
    upload = DeviceState("bob@example.test", 1).upload(1)
    sig = bytearray(base64.b64decode(upload["signed_prekey"]["signature"]))
    sig[0] ^= 1
    upload["signed_prekey"]["signature"] = base64.b64encode(bytes(sig)).decode()
    answer = app.call("bob", "PUT", "/api/keys", upload)
    assert answer.status == 400 and answer.json()["error"] == "invalid_signature"
    # a signature by another identity is just as forged
    upload = DeviceState("bob@example.test", 1).upload(1)
    upload["identity_key"] = DeviceState("bob@example.test", 1).upload(0)["identity_key"]
    assert app.call("bob", "PUT", "/api/keys", upload).json()["error"] == "invalid_signature"
    assert app.call("alice", "GET", "/api/keys/bob@example.test").json()["devices"] == []


def test_malformed_uploads(app):
    good = DeviceState("bob@example.test", 3).upload(1)
    for field, value, code in [("device_id", 0, "invalid_request"), ("device_id", "3", "invalid_request"),
                               ("identity_key", "AAAA", "invalid_key"), ("identity_key", "!!", "invalid_key"),
                               ("one_time_prekeys", [{"key_id": 1}], "invalid_key"),
                               ("one_time_prekeys", "x", "invalid_request")]:
        answer = app.call("bob", "PUT", "/api/keys", {**good, field: value})
        assert answer.status == 400 and answer.json()["error"] == code, (field, answer.body)
    assert app.call("bob", "PUT", "/api/keys", {**good, "signed_prekey": None}).status == 400
    assert app.http.post_json("/api/keys", good, method="PUT").status == 401


def test_unknown_user_and_low_prekey_event(app, events):
    assert app.call("alice", "GET", "/api/keys/nobody@example.test").status == 404
    app.register("bob", 1, one_time=keys.LOW_PREKEYS + 1)
    app.call("alice", "GET", "/api/keys/bob@example.test")
    assert not [e for t, e in events if t == "keys.low"]
    app.call("alice", "GET", "/api/keys/bob@example.test")
    low = [e for t, e in events if t == "keys.low"]
    assert low == [{"user": "bob@example.test", "device_id": 1, "remaining": keys.LOW_PREKEYS - 1}]


def test_new_identity_resets_prekeys_and_registration(app):
    app.register("bob", 1, one_time=3)
    before = app.call("alice", "GET", "/api/keys/bob@example.test").json()["devices"][0]
    app.register("bob", 1, one_time=0)  # a reinstall: new identity key
    after = app.call("alice", "GET", "/api/keys/bob@example.test").json()["devices"][0]
    assert after["identity_key"] != before["identity_key"]
    assert after["registration_id"] != before["registration_id"]
    assert after["one_time_prekey"] is None


def test_concurrent_fetchers_never_share_a_prekey(registry, db_url):
    """50 fetchers, each on its own connection at once (PostgreSQL: SKIP LOCKED; SQLite: one writer)."""
    from tau.auth import accounts

    bob = registry.db.sync.run("u", accounts.add_user, "bob@example.test", None)
    upload = keys.parse_upload(DeviceState("bob@example.test", 1).upload(30))
    registry.db.sync.run("up", keys.store_upload, bob.id, upload, 0)
    got: list[int | None] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def fetch() -> None:
        db = SyncDatabase(create_engine(db_url))
        try:
            barrier.wait()
            bundles, _ = db.run("claim", keys.claim_bundles, bob.id, None)
            one = bundles[0]["one_time_prekey"]
            got.append(None if one is None else one["key_id"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=fetch) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    handed = [k for k in got if k is not None]
    assert len(got) == 50 and len(handed) == 30 and len(set(handed)) == 30
