"""``POST /api/emails`` with attachment links, in-process (real HTTP bytes, SQLite and PostgreSQL):
a TauCloud file bigger than ``[limits] message_size`` goes out as a link without being read, and
what happens when the sender's files cannot take the copy."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path
from typing import Any

import pytest

from tau.auth.scopes import FULL as FULL_SCOPE
from tau.flows.attach_links import AttachmentLinks
from tests.support.harness import make_registry
from tests.support.http import assert_json_error
from tests.support.mail_api import ALICE, BOB, Mail

LINK = re.compile(r"https://localhost/s/([A-Za-z0-9_-]+)")


@pytest.fixture
def mail(tmp_path: Path, db_url: str) -> Any:
    registry = make_registry(tmp_path / "tau", db_url,
                             limits={"requests_per_minute_ip": "0", "requests_per_hour_user": "0",
                                     "message_size": "100000"},
                             flows={"attachment_link_threshold": "50000"})
    world = Mail(registry)
    registry.provide("attachment_links", AttachmentLinks(registry))
    yield world
    registry.db.close()


def upload(mail: Mail, path: str, data: bytes, user: str = ALICE) -> str:
    token = str(mail.registry.tokens.issue(user, scope=FULL_SCOPE))
    r = mail.client.request("POST", f"/api/files?path={path}", data, token=token)
    assert r.status == 201, r.body
    return str(r.json()["id"])


def test_a_cloud_file_over_the_message_size_is_sent_as_a_link(mail: Mail) -> None:
    data = bytes(range(256)) * 1000                           # 256 kB: over message_size (100 kB)
    file_id = upload(mail, "/video.mp4", data)
    mail.send(to=[BOB], subject="big file", text="here", attachments=[{"file_id": file_id}])
    [item] = mail.items(BOB)
    raw = mail.api("GET", f"/api/emails/{item['id']}?raw=1", user=BOB).body
    parts = list(email.message_from_bytes(raw, policy=email.policy.default).walk())
    [link_text] = [t for t in (p.get_content() for p in parts if p.get_content_type() == "text/plain")
                   if "https://localhost/s/" in t]
    [token] = LINK.findall(link_text)
    got = mail.client.request("GET", f"/s/{token}")
    assert got.status == 200 and got.body == data
    listing = mail.api("GET", "/api/files?path=/Mail%20attachments").json()["items"]
    assert [(i["name"], i["size"]) for i in listing] == [("video.mp4", len(data))]
    # bob cannot read alice's copy through the files API, only through the link
    assert_json_error(mail.api("GET", f"/api/files/{listing[0]['id']}", user=BOB), 404)


def test_when_the_cloud_cannot_take_it_the_usual_size_rule_answers(mail: Mail) -> None:
    data = b"x" * 60_000
    file_id = upload(mail, "/a.bin", data)
    mail.registry.db.sync.run("t", lambda txn: txn.execute("UPDATE users SET quota_bytes = ? WHERE address = ?",
                                                           (100_000, ALICE)))
    # the link copy would double the file in alice's quota: no link, so the file is attached as
    # it is — 60 kB (80 kB in base64) fits the 100 kB message size
    mail.send(to=[BOB], subject="fallback", text="attached", attachments=[{"file_id": file_id}])
    [item] = mail.items(BOB)
    raw = mail.api("GET", f"/api/emails/{item['id']}?raw=1", user=BOB).body
    parts = list(email.message_from_bytes(raw, policy=email.policy.default).iter_attachments())
    assert [p.get_payload(decode=True) for p in parts] == [data]
    # a file over the message size that cannot be linked is refused as before, with a clear code
    mail.registry.db.sync.run("t", lambda txn: txn.execute("UPDATE users SET quota_bytes = NULL WHERE address = ?",
                                                           (ALICE,)))
    big = upload(mail, "/big.bin", b"y" * 150_000)
    mail.registry.db.sync.run("t", lambda txn: txn.execute("UPDATE users SET quota_bytes = ? WHERE address = ?",
                                                           (250_000, ALICE)))
    r = mail.api("POST", "/api/emails", {"to": [BOB], "subject": "too big", "attachments": [{"file_id": big}]})
    assert_json_error(r, 413, "payload_too_large")
    assert "Mail attachments" not in {i["name"] for i in mail.api("GET", "/api/files?path=/").json()["items"]} \
        or mail.api("GET", "/api/files?path=/Mail%20attachments").json()["items"] == []


def test_an_encrypted_send_carries_the_link_inside_the_encryption(mail: Mail) -> None:
    pgpy = pytest.importorskip("pgpy")
    import base64

    from pgpy.constants import HashAlgorithm, KeyFlags, PubKeyAlgorithm, SymmetricKeyAlgorithm

    keys = {}
    for address in (ALICE, BOB):
        key = pgpy.PGPKey.new(PubKeyAlgorithm.RSAEncryptOrSign, 2048)
        key.add_uid(pgpy.PGPUID.new(address.split("@")[0], email=address), usage={KeyFlags.Sign, KeyFlags.Certify},
                    hashes=[HashAlgorithm.SHA256], ciphers=[SymmetricKeyAlgorithm.AES256])
        sub = pgpy.PGPKey.new(PubKeyAlgorithm.RSAEncryptOrSign, 2048)
        key.add_subkey(sub, usage={KeyFlags.EncryptCommunications, KeyFlags.EncryptStorage})
        keys[address] = key
        r = mail.api("PUT", "/api/keys/pgp", {"public_key": str(key.pubkey)}, user=address)
        assert r.status == 200, r.body
    data = b"z" * 60_000
    r = mail.api("POST", "/api/emails", {"to": [BOB], "subject": "sealed", "text": "see link", "encrypt": True,
                                         "attachments": [{"filename": "plan.bin",
                                                          "content_base64": base64.b64encode(data).decode()}]})
    assert r.status == 202, r.body
    [item] = mail.items(BOB)
    raw = mail.api("GET", f"/api/emails/{item['id']}?raw=1", user=BOB).body
    assert b"/s/" not in raw                                   # the link is encrypted with the rest
    payload = email.message_from_bytes(raw, policy=email.policy.default).get_payload()[1]
    clear = keys[BOB].decrypt(pgpy.PGPMessage.from_blob(payload.get_content())).message
    inner = clear if isinstance(clear, str) else bytes(clear).decode()
    [token] = LINK.findall(inner.replace("=\r\n", "").replace("=\n", ""))
    got = mail.client.request("GET", f"/s/{token}")
    assert got.status == 200 and got.body == data
