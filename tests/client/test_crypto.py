"""X3DH and the Double Ratchet in tau.client: agreement, forward order, tampering, persistence."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tau.client import x3dh
from tau.client.device import DecryptError, DeviceState
from tau.client.ratchet import MAX_SKIP, Ratchet, RatchetError
from tau.client.x3dh import IdentityKey, X3DHError, b64e, raw_public


def _bundle(identity: IdentityKey, spk: X25519PrivateKey, opk: X25519PrivateKey | None) -> dict:
    public = raw_public(spk.public_key())
    return {"device_id": 1, "identity_key": b64e(identity.public),
            "signed_prekey": {"key_id": 1, "public_key": b64e(public), "signature": b64e(identity.sign(public))},
            "one_time_prekey": {"key_id": 9, "public_key": b64e(raw_public(opk.public_key()))} if opk else None}


def test_identity_dh_key_is_the_birational_image_of_the_signing_key():
    for _ in range(20):
        ik = IdentityKey()
        assert raw_public(ik.dh.public_key()) == x3dh.ed25519_public_to_x25519(ik.public)


@pytest.mark.parametrize("with_opk", [True, False])
def test_x3dh_both_sides_agree(with_opk):
    alice, bob = IdentityKey(), IdentityKey()
    spk, opk = X25519PrivateKey.generate(), X25519PrivateKey.generate() if with_opk else None
    init = x3dh.initiate(alice, _bundle(bob, spk, opk))
    sk, ad = x3dh.respond(bob, init.header, spk, opk)
    assert sk == init.shared_key and len(sk) == 32
    assert ad == alice.public + bob.public == init.associated_data
    assert (init.header["opk"] == 9) is with_opk


def test_forged_bundle_is_refused():
    bob, mallory = IdentityKey(), IdentityKey()
    spk = X25519PrivateKey.generate()
    bundle = _bundle(bob, spk, None)
    bundle["signed_prekey"]["signature"] = b64e(mallory.sign(raw_public(spk.public_key())))
    with pytest.raises(X3DHError):
        x3dh.initiate(IdentityKey(), bundle)


def _pair() -> tuple[Ratchet, Ratchet, bytes]:
    sk, spk = b"k" * 32, X25519PrivateKey.generate()
    return Ratchet.alice(sk, raw_public(spk.public_key())), Ratchet.bob(sk, spk), b"ad"


def test_ratchet_out_of_order_and_both_directions():
    alice, bob, ad = _pair()
    sent = [alice.encrypt(f"a{i}".encode(), ad) for i in range(6)]
    assert bob.decrypt(*sent[4], ad) == b"a4"
    assert bob.decrypt(*sent[1], ad) == b"a1"
    reply = bob.encrypt(b"b0", ad)
    assert alice.decrypt(*reply, ad) == b"b0"
    late = alice.encrypt(b"a6", ad)
    assert bob.decrypt(*late, ad) == b"a6"
    assert [bob.decrypt(*sent[i], ad) for i in (0, 2, 3, 5)] == [b"a0", b"a2", b"a3", b"a5"]
    assert late[0]["dh"] != sent[0][0]["dh"]  # a DH ratchet step happened


def test_ratchet_rejects_tampering_replay_and_huge_gaps_without_state_damage():
    alice, bob, ad = _pair()
    header, ct = alice.encrypt(b"hello", ad)
    with pytest.raises(RatchetError):
        bob.decrypt(header, ct[:-1] + bytes([ct[-1] ^ 1]), ad)
    with pytest.raises(RatchetError):
        bob.decrypt({**header, "n": header["n"]}, ct, b"other ad")
    assert bob.decrypt(header, ct, ad) == b"hello"  # the failures changed nothing
    with pytest.raises(RatchetError):
        bob.decrypt(header, ct, ad)  # each message key works once
    far = {**alice.encrypt(b"x", ad)[0], "n": MAX_SKIP + 5}
    with pytest.raises(RatchetError):
        bob.decrypt(far, b"\0" * 32, ad)
    assert bob.decrypt(*alice.encrypt(b"still fine", ad), ad) == b"still fine"


def test_ratchet_survives_serialisation():
    alice, bob, ad = _pair()
    early = alice.encrypt(b"early", ad)
    later = alice.encrypt(b"later", ad)
    assert bob.decrypt(*later, ad) == b"later"
    bob = Ratchet.from_dict(json.loads(json.dumps(bob.to_dict())))
    assert bob.decrypt(*early, ad) == b"early"  # the skipped key was kept


def test_devices_exchange_prekey_then_normal_messages():
    alice, bob = DeviceState("alice@example.test", 1), DeviceState("bob@example.test", 2)
    upload = bob.upload(2)
    bundle = {"device_id": 2, "registration_id": 5, "identity_key": upload["identity_key"],
              "signed_prekey": upload["signed_prekey"], "one_time_prekey": upload["one_time_prekeys"][0]}
    alice.start_session("bob@example.test", bundle)
    first = alice.encrypt("bob@example.test", 2, b"one")
    second = alice.encrypt("bob@example.test", 2, b"two")
    assert "x" in json.loads(base64.b64decode(second))  # PreKey messages until bob answers
    assert bob.decrypt("alice@example.test", 1, second) == b"two"
    assert bob.decrypt("alice@example.test", 1, first) == b"one"
    assert 1 not in bob.one_time  # the one-time prekey is gone after use
    answer = bob.encrypt("alice@example.test", 1, b"three")
    assert alice.decrypt("bob@example.test", 2, answer) == b"three"
    assert "x" not in json.loads(base64.b64decode(alice.encrypt("bob@example.test", 2, b"four")))
    with pytest.raises(DecryptError):
        bob.decrypt("alice@example.test", 1, first)  # a replay
    with pytest.raises(DecryptError):
        bob.decrypt("alice@example.test", 1, "not-an-envelope")
    restored = DeviceState.from_dict(json.loads(json.dumps(bob.to_dict())))
    assert restored.decrypt("alice@example.test", 1, alice.encrypt("bob@example.test", 2, b"five")) == b"five"
