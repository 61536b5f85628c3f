"""OpenPGP through the REST API: key upload, WKD, PGP/MIME encryption (RFC 3156 §4) that decrypts with
the recipient's private key in pgpy, signing (§5 and §6.2), Autocrypt, refusals that name recipients
without keys, and users who cannot use each other's keys."""

from __future__ import annotations

import email
import email.policy
from functools import cache

import pgpy
import pytest
from pgpy.constants import CompressionAlgorithm, HashAlgorithm, KeyFlags, PubKeyAlgorithm, SymmetricKeyAlgorithm

from tau.mail.pgp import wkd_hash, zbase32
from tests.support.http import assert_json_error
from tests.support.mail_api import ALICE, BOB, mail_world


@pytest.fixture
def mail(tmp_path, db_url):
    yield from mail_world(tmp_path, db_url)


@cache
def keypair(address: str) -> tuple[str, str]:
    """(armored public, armored private protected with 'pass-' + address)."""
    key = pgpy.PGPKey.new(PubKeyAlgorithm.RSAEncryptOrSign, 2048)
    uid = pgpy.PGPUID.new(address.split("@")[0], email=address)
    key.add_uid(uid, usage={KeyFlags.Sign, KeyFlags.Certify}, hashes=[HashAlgorithm.SHA256],
                ciphers=[SymmetricKeyAlgorithm.AES256], compression=[CompressionAlgorithm.Uncompressed])
    sub = pgpy.PGPKey.new(PubKeyAlgorithm.RSAEncryptOrSign, 2048)
    key.add_subkey(sub, usage={KeyFlags.EncryptCommunications, KeyFlags.EncryptStorage})
    key.protect("pass-" + address, SymmetricKeyAlgorithm.AES256, HashAlgorithm.SHA256)
    return str(key.pubkey), str(key)


def private(address: str) -> pgpy.PGPKey:
    return pgpy.PGPKey.from_blob(keypair(address)[1])[0]


def upload(mail, address: str, with_private: bool = True) -> dict:
    public, secret = keypair(address)
    body = {"public_key": public}
    if with_private:
        body |= {"private_key": secret, "passphrase": "pass-" + address}
    r = mail.api("PUT", "/api/keys/pgp", body, user=address)
    assert r.status == 200, r.body
    return r.json()


def raw_of(mail, user: str) -> bytes:
    [item] = mail.items(user)
    return mail.api("GET", f"/api/emails/{item['id']}?raw=1", user=user).body


def test_zbase32_matches_the_wkd_example():
    # draft-koch-openpgp-webkey-service §3.1: "Joe.Doe" → iy9q119eutrkn8s1mk4r39qejnbu3n5q
    assert wkd_hash("Joe.Doe") == "iy9q119eutrkn8s1mk4r39qejnbu3n5q"
    assert zbase32(b"") == ""


def test_upload_and_wkd(mail):
    info = upload(mail, BOB)
    assert info["has_private_key"] and info["wkd_hash"] == wkd_hash("bob")
    r = mail.client.request("GET", f"/.well-known/openpgpkey/hu/{info['wkd_hash']}?l=bob",
                            headers={"Host": "example.test"})
    assert r.status == 200 and r.header("content-type") == "application/octet-stream"
    key, _ = pgpy.PGPKey.from_blob(r.body)
    assert key.fingerprint == private(BOB).fingerprint and key.is_public
    adv = mail.client.request("GET", f"/.well-known/openpgpkey/example.test/hu/{info['wkd_hash']}")
    assert adv.status == 200 and adv.body == r.body
    assert mail.client.request("GET", f"/.well-known/openpgpkey/example.test/hu/{wkd_hash('alice')}").status == 404
    assert mail.client.request("GET", "/.well-known/openpgpkey/example.test/policy").status == 200


def test_encrypted_mail_decrypts_with_the_recipients_key(mail):
    upload(mail, BOB, with_private=False)
    upload(mail, ALICE)
    r = mail.api("POST", "/api/emails", {"to": [BOB], "subject": "secret plan", "text": "Meet at dawn.",
                                         "encrypt": True, "sign": True, "passphrase": "pass-" + ALICE})
    assert r.status == 202, r.body
    raw = raw_of(mail, BOB)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    # Thunderbird's structure: multipart/encrypted; protocol=application/pgp-encrypted, two parts
    assert msg.get_content_type() == "multipart/encrypted"
    assert msg.get_param("protocol") == "application/pgp-encrypted"
    control, payload = msg.get_payload()
    assert control.get_content_type() == "application/pgp-encrypted"
    assert b"Version: 1" in control.get_payload(decode=True)
    assert payload.get_content_type() == "application/octet-stream"
    assert msg["Autocrypt"].startswith(f"addr={ALICE}; prefer-encrypt=mutual; keydata=")
    assert b"Meet at dawn" not in raw and msg["Subject"] == "secret plan"
    bob_key = private(BOB)
    with bob_key.unlock("pass-" + BOB):
        clear = bob_key.decrypt(pgpy.PGPMessage.from_blob(payload.get_content()))
    inner = email.message_from_bytes(bytes(clear.message) if isinstance(clear.message, (bytes, bytearray))
                                     else clear.message.encode(), policy=email.policy.default)
    assert inner.get_content().strip() == "Meet at dawn."
    assert pgpy.PGPKey.from_blob(keypair(ALICE)[0])[0].verify(clear)         # signed inside (§6.2)
    alice_key = private(ALICE)                                             # the Sent copy is readable too
    with alice_key.unlock("pass-" + ALICE):
        assert alice_key.decrypt(pgpy.PGPMessage.from_blob(payload.get_content())).is_encrypted is False


def test_signed_only_mail_verifies(mail):
    upload(mail, ALICE)
    r = mail.api("POST", "/api/emails", {"to": [BOB], "subject": "signed", "text": "Trust me.", "sign": True,
                                         "passphrase": "pass-" + ALICE})
    assert r.status == 202, r.body
    raw = raw_of(mail, BOB)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/signed" and msg.get_param("micalg") == "pgp-sha256"
    boundary = msg.get_boundary().encode()
    signed_bytes = raw.split(b"--" + boundary + b"\r\n")[1].rsplit(b"\r\n", 1)[0]
    signature = pgpy.PGPSignature.from_blob(msg.get_payload()[1].get_content())
    public = pgpy.PGPKey.from_blob(keypair(ALICE)[0])[0]
    assert public.verify(signed_bytes, signature)


def test_refusals(mail):
    upload(mail, ALICE)
    r = mail.api("POST", "/api/emails", {"to": [BOB, "x@remote.test"], "text": "x", "encrypt": True})
    body = assert_json_error(r, 400, "recipient_keys_missing")
    assert body["recipients"] == [BOB, "x@remote.test"] and BOB in body["message"]
    assert_json_error(mail.api("POST", "/api/emails", {"to": [ALICE], "text": "x", "sign": True}), 403, "key_locked")
    assert_json_error(mail.api("POST", "/api/emails", {"to": [ALICE], "text": "x", "sign": True,
                                                       "passphrase": "wrong"}), 403, "key_locked")
    # bob has no key of his own: he cannot sign with alice's
    assert_json_error(mail.api("POST", "/api/emails", {"to": [ALICE], "text": "x", "sign": True,
                                                       "passphrase": "pass-" + ALICE}, user=BOB), 400, "no_private_key")
    # a key whose user ID is someone else's address is refused
    r = mail.api("PUT", "/api/keys/pgp", {"public_key": keypair(ALICE)[0]}, user=BOB)
    assert_json_error(r, 400, "invalid_key")
    assert_json_error(mail.api("PUT", "/api/keys/pgp", {"public_key": "garbage"}), 400, "invalid_key")
    assert_json_error(mail.api("PUT", "/api/keys/pgp", {"public_key": keypair(ALICE)[0],
                                                        "private_key": keypair(BOB)[1]}), 400, "invalid_key")
    assert mail.items(BOB) == [] and mail.queue() == []


@pytest.mark.parametrize("field", ["encrypt", "sign"])
def test_flags_must_be_booleans(mail, field):
    assert_json_error(mail.api("POST", "/api/emails", {"to": [BOB], field: "yes"}), 400, "invalid_request")
