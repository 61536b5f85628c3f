"""S/MIME (RFC 8551) against the real daemon on SQLite and PostgreSQL, with real clients only: the
HTTP API with a bearer token (PKCS#12 upload, sending, the REST view), smtplib delivering to the MX
as a remote correspondent would, imaplib reading what arrived, and the ``openssl`` CLI checking
signatures and decrypting as another S/MIME implementation."""

from __future__ import annotations

import base64
import email
import email.policy
import imaplib
import json
import smtplib
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.smime import decrypt_with_openssl, identity, openssl_signed, verify_with_openssl
from tests.support.smtp import DaemonStore

pytestmark = pytest.mark.e2e
ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
CAROL, DAVE = "carol@remote.test", "dave@remote.test"


@pytest.fixture(scope="module", params=engines())
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp(f"smime-{request.param}")
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("smtp", "imap", "http")).init()
    for user in (ALICE, BOB):
        d.add_user(user, PASSWORD)
    d.start("http")
    store = DaemonStore(d)
    tokens = {u: d.token(u, PASSWORD) for u in (ALICE, BOB)}
    for user in (ALICE, BOB):
        status, body = api(d, tokens[user], "PUT", "/api/keys/smime", identity(user).upload_body())
        assert status == 200, body
    yield {"daemon": d, "store": store, "tokens": tokens}
    store.close()
    d.stop()


def fingerprint(address: str) -> str:
    return identity(address).cert.fingerprint(hashes.SHA256()).hex()


def api(d: TauDaemon, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    status, _, out = d.http(method, path, data, headers, token=token)
    return status, (json.loads(out) if out[:1] in (b"{", b"[") else out)


def imap_fetch(d: TauDaemon, user: str, subject: str, mailbox: str = "INBOX", timeout: float = 20) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        imap = imaplib.IMAP4("127.0.0.1", d.ports["imap"])
        try:
            imap.login(user, PASSWORD)
            imap.select(f'"{mailbox}"', readonly=True)
            _, found = imap.search(None, "SUBJECT", f'"{subject}"')
            ids = found[0].split()
            if ids:
                _, data = imap.fetch(ids[-1], "(RFC822)")
                return bytes(data[0][1])
        finally:
            imap.logout()
        if time.monotonic() > deadline:
            raise AssertionError(f"no {subject!r} in {user}'s {mailbox}")
        time.sleep(0.2)


def rest_view(world: Any, user: str, subject: str, mailbox: str = "INBOX") -> dict[str, Any]:
    d, token = world["daemon"], world["tokens"][user]
    imap_fetch(d, user, subject, mailbox)
    status, listing = api(d, token, "GET", f"/api/emails?mailbox={mailbox}&q=subject:{subject}")
    assert status == 200 and listing["items"], listing
    status, item = api(d, token, "GET", f"/api/emails/{listing['items'][0]['id']}")
    assert status == 200, item
    return dict(item)


def deliver_to_mx(d: TauDaemon, sender: str, rcpt: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", d.ports["smtp"], timeout=30) as s:
        s.sendmail(sender, [rcpt], raw)


def test_upload_shows_the_certificate_and_never_the_key(world):
    d, token = world["daemon"], world["tokens"][ALICE]
    status, body = api(d, token, "GET", "/api/keys/smime")
    assert status == 200 and body["addresses"] == [ALICE]
    assert body["certificate"] == identity(ALICE).cert_pem and "private_key" not in body
    assert body["fingerprint"] == fingerprint(ALICE)


def test_the_private_key_is_not_stored_in_the_clear(world):
    [(certificate, sealed)] = world["store"].query("SELECT k.certificate, k.private_key FROM smime_keys k"
                                                   " JOIN users u ON u.id = k.user_id WHERE u.address = ?", (ALICE,))
    key = identity(ALICE).key_der
    stored = (certificate + sealed).encode()
    for needle in (key, base64.b64encode(key), identity(ALICE).key_pem.split(b"\n")[1], b"PRIVATE KEY"):
        assert needle not in stored
    assert len(base64.b64decode(sealed)) >= len(key) + 12 + 16       # nonce + AES-GCM tag


def test_wrong_p12_password_is_refused(world):
    d, token = world["daemon"], world["tokens"][BOB]
    status, body = api(d, token, "PUT", "/api/keys/smime", identity(BOB, variant=1).upload_body("wrong"))
    assert status == 400 and body["error"] == "invalid_key" and "password" in body["message"]
    status, kept = api(d, token, "GET", "/api/keys/smime")
    assert status == 200 and kept["certificate"] == identity(BOB).cert_pem      # the old one stays


def test_signed_mail_verifies_with_openssl_after_imap_fetch(world):
    d = world["daemon"]
    status, body = api(d, world["tokens"][ALICE], "POST", "/api/emails",
                       {"to": [BOB], "subject": "smime-signed", "text": "Signed by Alice.", "sign": True})
    assert status == 202, body
    raw = imap_fetch(d, BOB, "smime-signed")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/signed"
    assert msg.get_param("protocol") == "application/pkcs7-signature" and msg.get_param("micalg") == "sha-256"
    assert b"Signed by Alice." in verify_with_openssl(raw, identity(ALICE))
    view = rest_view(world, BOB, "smime-signed")
    assert view["smime"] == {"signed": True, "encrypted": False, "valid": True, "signer": ALICE,
                             "fingerprint": fingerprint(ALICE)}
    assert view["text"].strip() == "Signed by Alice."


def test_encrypted_mail_decrypts_with_the_recipients_key(world):
    d = world["daemon"]
    status, body = api(d, world["tokens"][ALICE], "POST", "/api/emails",
                       {"to": [BOB], "subject": "smime-sealed", "text": "Meet at dawn.", "encrypt": True,
                        "sign": True})
    assert status == 202, body
    raw = imap_fetch(d, BOB, "smime-sealed")
    assert b"Meet at dawn" not in raw
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "application/pkcs7-mime" and msg.get_param("smime-type") == "enveloped-data"
    inner = decrypt_with_openssl(raw, identity(BOB))
    assert inner.startswith(b"Content-Type: multipart/signed")          # signed, then encrypted
    assert b"Meet at dawn." in verify_with_openssl(inner, identity(ALICE))
    view = rest_view(world, BOB, "smime-sealed")
    assert view["smime"]["encrypted"] and view["smime"]["decrypted"] and view["smime"]["valid"]
    assert view["smime"]["signer"] == ALICE and view["text"].strip() == "Meet at dawn."
    sent = rest_view(world, ALICE, "smime-sealed", "Sent")               # encrypted to the sender too
    assert sent["smime"]["decrypted"] and sent["text"].strip() == "Meet at dawn."


def test_signed_mail_from_a_correspondent_is_verified_and_its_certificate_kept(world):
    d, token = world["daemon"], world["tokens"][BOB]
    deliver_to_mx(d, CAROL, BOB, openssl_signed(identity(CAROL), BOB, "from-carol", "Hello Bob, Carol here."))
    view = rest_view(world, BOB, "from-carol")
    assert view["smime"]["valid"] is True and view["smime"]["signer"] == CAROL
    deadline = time.monotonic() + 20
    while (found := api(d, token, "GET", f"/api/keys/smime/recipients/{CAROL}"))[0] == 404:
        assert time.monotonic() < deadline, "carol's certificate was not collected"
        time.sleep(0.2)
    assert found[0] == 200 and found[1]["source"] == "mail" and found[1]["certificate"] == identity(CAROL).cert_pem
    # now Bob can encrypt to Carol (a remote address: queued), with no OpenPGP key anywhere
    status, body = api(d, token, "POST", "/api/emails", {"to": [CAROL], "subject": "to-carol", "text": "Secret.",
                                                         "encrypt": True})
    assert status == 202, body
    sent = imap_fetch(d, BOB, "to-carol", "Sent")
    assert b"Secret." not in sent
    assert b"Secret." in decrypt_with_openssl(sent, identity(CAROL))


def test_tampered_signed_mail_is_not_valid_and_its_certificate_not_kept(world):
    d, token = world["daemon"], world["tokens"][BOB]
    raw = openssl_signed(identity(DAVE), BOB, "from-dave", "Pay 10 EUR to Dave.")
    assert raw.count(b"Pay 10 EUR") == 1
    deliver_to_mx(d, DAVE, BOB, raw.replace(b"Pay 10 EUR", b"Pay 99 EUR"))
    view = rest_view(world, BOB, "from-dave")
    assert view["smime"]["signed"] is True and view["smime"]["valid"] is False
    assert "digest" in view["smime"]["reason"]
    time.sleep(1)                                  # collection runs after delivery: give it its chance
    status, _ = api(d, token, "GET", f"/api/keys/smime/recipients/{DAVE}")
    assert status == 404


def test_encrypting_to_an_address_without_a_certificate_names_it(world):
    d = world["daemon"]
    status, body = api(d, world["tokens"][ALICE], "POST", "/api/emails",
                       {"to": [BOB, "nobody@remote.test"], "subject": "x", "text": "x", "encrypt": True})
    assert status == 400 and body["error"] == "recipient_keys_missing"
    assert body["recipients"] == ["nobody@remote.test"] and "S/MIME" in body["message"]
