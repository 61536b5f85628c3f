"""S/MIME through the REST API in process, on both engines: what a PKCS#12 upload must be, the
certificates kept for correspondents, which of OpenPGP and S/MIME protects a message, what a reader
without the key sees; and the CMS reader against what ``openssl`` produces (BER, opaque signing)."""

from __future__ import annotations

import base64
import email
import email.policy

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tau.mail import smime, smime_read, smime_store
from tests.mail.test_api_pgp import upload as upload_pgp
from tests.support.harness import resolve
from tests.support.http import assert_json_error
from tests.support.mail_api import ALICE, BOB, mail_world
from tests.support.smime import identity, openssl, openssl_signed

CAROL = "carol@remote.test"


@pytest.fixture
def mail(tmp_path, db_url):
    yield from mail_world(tmp_path, db_url)


def upload(mail, address: str) -> dict:
    r = mail.api("PUT", "/api/keys/smime", identity(address).upload_body(), user=address)
    assert r.status == 200, r.body
    return r.json()


def inbox_view(mail, user: str, mailbox: str = "INBOX") -> dict:
    [item] = mail.items(user, f"mailbox={mailbox}")
    r = mail.api("GET", f"/api/emails/{item['id']}", user=user)
    assert r.status == 200, r.body
    return r.json()


def raw_of(mail, user: str, mailbox: str = "INBOX") -> bytes:
    [item] = mail.items(user, f"mailbox={mailbox}")
    return mail.api("GET", f"/api/emails/{item['id']}?raw=1", user=user).body


def test_a_pkcs12_must_hold_a_current_certificate_for_the_users_address_and_its_key(mail):
    for body in (identity(ALICE, expired=True).upload_body(), identity(BOB).upload_body(),
                 {"pkcs12": "not base64!"}, {"pkcs12": "aGVsbG8="}, {"pkcs12": 42}):
        assert_json_error(mail.api("PUT", "/api/keys/smime", body), 400, "invalid_key")
    # a certificate without its key cannot sign or decrypt
    loose = pkcs12.serialize_key_and_certificates(b"x", None, identity(ALICE).cert, None,
                                                  serialization.BestAvailableEncryption(b"pw"))
    body = {"pkcs12": base64.b64encode(loose).decode(), "password": "pw"}
    r = assert_json_error(mail.api("PUT", "/api/keys/smime", body), 400, "invalid_key")
    assert "private key and its certificate" in r["message"]
    assert_json_error(mail.api("GET", "/api/keys/smime"), 404, "not_found")


def test_delete_removes_the_certificate_and_signing_with_it(mail):
    assert upload(mail, ALICE)["addresses"] == [ALICE]
    assert mail.api("DELETE", "/api/keys/smime").json() == {"deleted": True}
    assert_json_error(mail.api("GET", "/api/keys/smime"), 404, "not_found")
    assert_json_error(mail.api("DELETE", "/api/keys/smime"), 404, "not_found")
    assert_json_error(mail.api("POST", "/api/emails", {"to": [BOB], "text": "x", "sign": True}), 400,
                      "no_private_key")
    assert mail.items(BOB) == []


def test_correspondent_certificates_are_uploaded_listed_and_deleted(mail):
    path = f"/api/keys/smime/recipients/{CAROL}"
    assert_json_error(mail.api("PUT", path, {"certificate": identity(BOB).cert_pem}), 400, "invalid_certificate")
    assert_json_error(mail.api("PUT", path, {"certificate": "junk"}), 400, "invalid_certificate")
    assert_json_error(mail.api("PUT", "/api/keys/smime/recipients/not-an-address",
                               {"certificate": identity(CAROL).cert_pem}), 400, "invalid_address")
    r = mail.api("PUT", path, {"certificate": identity(CAROL).cert_pem})
    assert r.status == 200 and r.json()["source"] == "upload" and r.json()["addresses"] == [CAROL]
    assert mail.api("GET", path).json()["certificate"] == identity(CAROL).cert_pem
    assert [i["address"] for i in mail.api("GET", "/api/keys/smime/recipients").json()["items"]] == [CAROL]
    dave = "dave@remote.test"
    dave_cert = identity(dave).cert_pem
    assert mail.api("PUT", f"/api/keys/smime/recipients/{dave}", {"certificate": dave_cert}).status == 200
    first = mail.api("GET", "/api/keys/smime/recipients?limit=1").json()
    assert [i["address"] for i in first["items"]] == [CAROL] and first["next_cursor"] == CAROL
    second = mail.api("GET", f"/api/keys/smime/recipients?limit=1&cursor={CAROL}").json()
    assert [i["address"] for i in second["items"]] == [dave] and second["next_cursor"] is None
    assert_json_error(mail.api("GET", path, user=BOB), 404, "not_found")          # alice's, not bob's
    assert mail.api("DELETE", path).json() == {"deleted": True}
    assert_json_error(mail.api("GET", path), 404, "not_found")


def test_pgp_first_smime_when_only_it_fits_or_when_asked(mail):
    upload_pgp(mail, ALICE)
    upload(mail, ALICE)
    upload(mail, BOB)
    mail.send(to=[BOB], subject="p", text="x", sign=True, passphrase="pass-" + ALICE)
    assert email.message_from_bytes(raw_of(mail, BOB)).get_param("protocol") == "application/pgp-signature"
    mail.api("DELETE", f"/api/emails/{mail.items(BOB)[0]['id']}", user=BOB)
    mail.send(to=[BOB], subject="s", text="x", sign=True, crypto="smime")
    assert email.message_from_bytes(raw_of(mail, BOB)).get_param("protocol") == "application/pkcs7-signature"
    mail.api("DELETE", f"/api/emails/{mail.items(BOB)[0]['id']}", user=BOB)
    mail.send(to=[BOB], subject="e", text="x", encrypt=True)         # bob has no OpenPGP key: S/MIME
    assert email.message_from_bytes(raw_of(mail, BOB)).get_content_type() == "application/pkcs7-mime"
    assert_json_error(mail.api("POST", "/api/emails", {"to": [BOB], "text": "x", "sign": True, "crypto": "x"}),
                      400, "invalid_request")
    assert_json_error(mail.api("POST", "/api/emails", {"to": [BOB], "text": "x", "encrypt": True,
                                                       "crypto": "pgp"}), 400, "recipient_keys_missing")


def test_a_reader_without_the_key_sees_an_encrypted_message_undecrypted(mail):
    upload(mail, ALICE)
    r = mail.api("PUT", f"/api/keys/smime/recipients/{BOB}", {"certificate": identity(BOB).cert_pem})
    assert r.status == 200
    mail.send(to=[BOB], subject="sealed", text="For Bob only.", encrypt=True)
    view = inbox_view(mail, BOB)
    assert view["smime"] == {"signed": False, "encrypted": True, "decrypted": False}
    assert view["text"] is None and "For Bob only" not in str(view)
    assert inbox_view(mail, ALICE, "Sent")["text"].strip() == "For Bob only."


def test_a_collected_certificate_never_replaces_an_uploaded_one(mail):
    mail.api("PUT", f"/api/keys/smime/recipients/{CAROL}", {"certificate": identity(CAROL).cert_pem}, user=BOB)
    raw = openssl_signed(identity(CAROL, variant=1), BOB, "hi", "Hello.")
    resolve(mail.store.deliver([BOB], raw, None, len(raw), None))
    assert inbox_view(mail, BOB)["smime"]["valid"] is True
    kept = mail.api("GET", f"/api/keys/smime/recipients/{CAROL}", user=BOB).json()
    assert kept["source"] == "upload" and kept["certificate"] == identity(CAROL).cert_pem
    resolve(mail.store.deliver([ALICE], raw, None, len(raw), None))      # alice had none: kept for her
    kept = mail.api("GET", f"/api/keys/smime/recipients/{CAROL}", user=ALICE).json()
    assert kept["source"] == "mail" and kept["certificate"] == identity(CAROL, variant=1).cert_pem


def test_the_sealed_key_opens_only_for_its_user(mail):
    upload(mail, ALICE)
    uid = mail.registry.db.sync.run("uid", smime_store.user_id_of, ALICE)
    _cert, sealed = mail.registry.db.sync.run("identity", smime_store.identity, uid)
    assert smime.unseal(mail.registry.keys, sealed, uid) == identity(ALICE).key_der
    with pytest.raises(InvalidTag):
        smime.unseal(mail.registry.keys, sealed, uid + 1)


def test_openssl_cms_stream_ber_and_opaque_signatures_verify():
    carol = identity(CAROL)
    now = carol.cert.not_valid_before_utc.timestamp() + 3600
    content = b"Content-Type: text/plain\r\n\r\nStreamed.\r\n"
    code, out, err = openssl("cms", "-sign", "-stream", "-signer", "{cert}", "-inkey", "{key}", "-from", CAROL,
                             "-subject", "ber", "-binary", "-in", "{content}",
                             files={"cert": carol.cert_pem.encode(), "key": carol.key_pem, "content": content})
    assert code == 0, err
    result, _ = smime_read.inspect(out.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), None, now)
    assert result is not None and result["valid"] is True and result["signer"] == CAROL
    opaque = openssl_signed(carol, BOB, "opaque", "Wrapped inside.", opaque=True)
    result, inner = smime_read.inspect(opaque, None, now)
    assert result is not None and result["valid"] is True and inner is not None and b"Wrapped inside." in inner


def test_signing_as_an_address_the_certificate_does_not_name_is_refused(mail):
    from tau.auth import accounts

    upload(mail, ALICE)
    mail.registry.db.sync.run("alias", accounts.add_alias, "al@example.test", ALICE)
    r = mail.api("POST", "/api/emails", {"from": "al@example.test", "to": [BOB], "text": "x", "sign": True})
    assert "al@example.test" in assert_json_error(r, 400, "no_private_key")["message"]
    assert mail.items(BOB) == []


def test_corrupted_signatures_are_reported_not_valid_never_raised():
    """Anyone can send any bytes: 400 deterministic corruptions of the SignedData (and truncations)."""
    import random
    import re

    carol = identity(CAROL)
    now = carol.cert.not_valid_before_utc.timestamp() + 3600
    raw = openssl_signed(carol, BOB, "s", "Hello.")
    head, _, rest = raw.rpartition(b"application/pkcs7-signature")
    match = re.search(rb"\r\n\r\n([A-Za-z0-9+/=\r\n]+)\r\n-", rest)
    assert match is not None
    der = base64.b64decode(re.sub(rb"\s+", b"", match.group(1)))
    rng = random.Random(21)
    valid = 0
    for n in range(400):
        broken = bytearray(der)
        if n % 5 == 0:
            broken = broken[:rng.randrange(len(broken))]
        else:
            for _ in range(rng.randint(1, 3)):
                broken[rng.randrange(len(broken))] = rng.randrange(256)
        body = base64.encodebytes(bytes(broken)).replace(b"\n", b"\r\n")
        mutated = head + b"application/pkcs7-signature" + rest[:match.start(1)] + body + rest[match.end(1):]
        result, _ = smime_read.inspect(mutated, None, now)
        assert result is not None and result["signed"] is True and result["valid"] in (True, False)
        valid += result["valid"]
    # a few flips land where nothing is signed (the certificate's own signature, which no CA checks)
    assert valid < 40
