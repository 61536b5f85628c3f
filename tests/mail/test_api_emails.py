"""REST /api/emails in-process (real HTTP bytes, real store on SQLite and PostgreSQL): send, list with
cursor and search, get parsed/raw, patch flags and folder, delete to Trash then expunge, TauCloud file
attachments, hostile input and a second user who must see and touch nothing of the first's."""

from __future__ import annotations

import base64
import email
import email.policy
import json

import pytest

from tau.auth.scopes import FULL as FULL_SCOPE
from tests.support.harness import resolve
from tests.support.http import assert_json_error
from tests.support.mail_api import ALICE, BOB, mail_world


@pytest.fixture
def mail(tmp_path, db_url):
    yield from mail_world(tmp_path, db_url)


def test_send_local_remote_and_bcc(mail):
    sent_id = mail.send(to=[BOB, "carol@remote.test"], bcc=["dave@remote.test"], subject="Lunch?",
                        text="Noon at the usual place.")
    [item] = mail.items(BOB)
    assert item["subject"] == "Lunch?" and item["from"] == [ALICE] and item["read"] is False
    assert item["preview"].startswith("Noon at the usual place")
    [(rcpts, sender, status)] = mail.queue()
    assert json.loads(rcpts) == ["carol@remote.test", "dave@remote.test"] and sender == ALICE and status == "queued"
    [copy] = mail.items(ALICE, "mailbox=Sent")
    assert copy["id"] == sent_id and copy["read"] is True
    raw = mail.api("GET", f"/api/emails/{item['id']}?raw=1", user=BOB)
    assert raw.header("content-type") == "message/rfc822"
    assert b"dave@remote.test" not in raw.body and raw.body.startswith(b"From: alice@example.test\r\n")


def test_parsed_message_with_html_and_attachment(mail):
    pdf = b"%PDF-1.4 fake"
    mail.send(to=[BOB], subject="Report", text="plain body", html="<p>html body</p>",
              attachments=[{"filename": "r.pdf", "content_type": "application/pdf",
                            "content_base64": base64.b64encode(pdf).decode()}])
    [item] = mail.items(BOB)
    got = mail.api("GET", f"/api/emails/{item['id']}", user=BOB).json()
    assert got["text"].strip() == "plain body" and "<p>html body</p>" in got["html"]
    assert [(a["filename"], a["content_type"], a["size"]) for a in got["attachments"]] == [
        ("r.pdf", "application/pdf", len(pdf))]
    assert ["Subject", "Report"] in got["headers"]


def test_list_pagination_and_search(mail):
    for i in range(7):
        mail.send(to=[BOB], subject=f"note {i}", text="apples" if i % 2 else "pears")
    first = mail.api("GET", "/api/emails?limit=3", user=BOB).json()
    assert [i["subject"] for i in first["items"]] == ["note 6", "note 5", "note 4"]
    second = mail.api("GET", f"/api/emails?limit=3&cursor={first['next_cursor']}", user=BOB).json()
    third = mail.api("GET", f"/api/emails?limit=3&cursor={second['next_cursor']}", user=BOB).json()
    assert [i["subject"] for i in second["items"] + third["items"]] == [f"note {i}" for i in (3, 2, 1, 0)]
    assert third["next_cursor"] is None
    assert {i["subject"] for i in mail.items(BOB, "q=apples")} == {"note 1", "note 3", "note 5"}
    assert [i["subject"] for i in mail.items(BOB, "q=subject:%22note%204%22")] == ["note 4"]
    assert len(mail.items(BOB, f"q=from:{ALICE}")) == 7
    mail.api("PATCH", f"/api/emails/{first['items'][0]['id']}", {"read": True}, user=BOB)
    assert len(mail.items(BOB, "q=is:unread")) == 6


def test_patch_flags_archive_and_imap_sees_it(mail):
    mail.send(to=[BOB], subject="flag me", text="x")
    [item] = mail.items(BOB)
    r = mail.api("PATCH", f"/api/emails/{item['id']}", {"starred": True, "read": True}, user=BOB)
    assert r.status == 200 and r.json()["starred"] and set(r.json()["flags"]) == {"\\Flagged", "\\Seen"}
    box = resolve(mail.store.get_mailbox(BOB, "INBOX"))                 # the IMAP side: same rows
    [meta] = resolve(mail.store.fetch(box.id, resolve(mail.store.uids(box.id))))
    assert set(meta.flags) == {"\\Flagged", "\\Seen"}
    resolve(mail.store.store_flags(box.id, [meta.uid], "-", ["\\Flagged"]))   # IMAP STORE ...
    assert mail.items(BOB)[0]["starred"] is False                            # ... seen by REST
    moved = mail.api("PATCH", f"/api/emails/{item['id']}", {"mailbox": "Archive"}, user=BOB).json()
    assert moved["mailbox"] == "Archive" and moved["id"] != item["id"]
    assert mail.items(BOB) == [] and len(mail.items(BOB, "mailbox=Archive")) == 1
    assert mail.api("GET", f"/api/emails/{item['id']}", user=BOB).status == 404


def test_delete_to_trash_then_expunge(mail):
    mail.send(to=[BOB], subject="bin me", text="x")
    [item] = mail.items(BOB)
    trashed = mail.api("DELETE", f"/api/emails/{item['id']}", user=BOB).json()
    assert trashed["mailbox"] == "Trash" and not trashed["deleted"]
    assert len(mail.items(BOB, "mailbox=Trash")) == 1
    gone = mail.api("DELETE", f"/api/emails/{trashed['id']}", user=BOB).json()
    assert gone["deleted"] is True and mail.items(BOB, "mailbox=Trash") == []


def test_file_attachment_from_taucloud(mail):
    up = mail.client.request("POST", "/api/files?path=/notes.txt", b"cloud bytes",
                             token=str(mail.registry.tokens.issue(ALICE, scope=FULL_SCOPE)))
    assert up.status == 201, up.body
    file_id = up.json()["id"]
    mail.send(to=[BOB], subject="with file", text="see attached", attachments=[{"file_id": file_id}])
    [item] = mail.items(BOB)
    raw = mail.api("GET", f"/api/emails/{item['id']}?raw=1", user=BOB).body
    parts = [p for p in email.message_from_bytes(raw, policy=email.policy.default).iter_attachments()]
    assert [(p.get_filename(), p.get_payload(decode=True)) for p in parts] == [("notes.txt", b"cloud bytes")]
    r = mail.api("POST", "/api/emails", {"to": [ALICE], "subject": "steal", "attachments": [{"file_id": file_id}]},
                 user=BOB)
    assert_json_error(r, 404, "file_not_found")                           # bob cannot mail alice's file


def test_bad_input(mail):
    assert_json_error(mail.client.request("GET", "/api/emails"), 401)
    assert_json_error(mail.api("POST", "/api/emails", raw=b"{not json"), 400, "invalid_json")
    assert_json_error(mail.api("POST", "/api/emails", [1, 2]), 400, "invalid_json")
    assert_json_error(mail.api("POST", "/api/emails", {"to": [], "subject": "x"}), 400, "no_recipients")
    assert_json_error(mail.api("POST", "/api/emails", {"to": ["not an address"]}), 400, "invalid_address")
    assert_json_error(mail.api("POST", "/api/emails", {"to": ["a@b.test\r\nBcc: x@y.test"]}), 400, "invalid_address")
    assert_json_error(mail.api("POST", "/api/emails", {"to": [BOB], "subject": "a\r\nBcc: x@y.test"}), 400)
    assert_json_error(mail.api("POST", "/api/emails", {"to": [BOB], "text": 5}), 400, "invalid_request")
    assert_json_error(mail.api("POST", "/api/emails", {"to": ["nobody@example.test"], "text": "x"}), 400,
                      "unknown_recipient")
    assert_json_error(mail.api("POST", "/api/emails", {"to": [BOB], "attachments": [
        {"filename": "a", "content_base64": "***"}]}), 400, "invalid_attachment")
    assert_json_error(mail.api("POST", "/api/emails", {"to": [BOB], "attachments": [
        {"filename": "../x", "content_base64": ""}]}), 400, "invalid_attachment")
    assert_json_error(mail.api("POST", "/api/emails", {"to": [f"u{i}@remote.test" for i in range(101)]}), 400,
                      "too_many_recipients")
    assert_json_error(mail.api("GET", "/api/emails?limit=0"), 400, "invalid_query")
    assert_json_error(mail.api("GET", "/api/emails?cursor=abc"), 400, "invalid_query")
    assert_json_error(mail.api("GET", "/api/emails?mailbox=Nope"), 404, "mailbox_not_found")
    assert_json_error(mail.api("GET", "/api/emails/1.x"), 404)
    assert_json_error(mail.api("GET", "/api/emails/99999999999999999999999.1"), 404)
    mail.send(to=[BOB], subject="x", text="x")
    [item] = mail.items(BOB)
    assert_json_error(mail.api("PATCH", f"/api/emails/{item['id']}", {"read": "yes"}, user=BOB), 400)
    assert_json_error(mail.api("PATCH", f"/api/emails/{item['id']}", {"flags": ["\\Bogus"]}, user=BOB), 400)
    assert_json_error(mail.api("PATCH", f"/api/emails/{item['id']}", {"mailbox": "Nope"}, user=BOB), 404)
    assert mail.queue() == []                                              # nothing half-sent


def test_second_user_sees_and_touches_nothing(mail):
    mail.send(to=[BOB], subject="for bob only", text="secret")
    [item] = mail.items(BOB)
    for method, body in (("GET", None), ("PATCH", {"read": True}), ("DELETE", None)):
        assert_json_error(mail.api(method, f"/api/emails/{item['id']}", body, user=ALICE), 404)
    assert_json_error(mail.api("GET", f"/api/emails/{item['id']}?raw=1", user=ALICE), 404)
    assert mail.items(ALICE) == []
    assert mail.items(BOB)[0]["read"] is False
    mail.send(user=BOB, to=[ALICE], subject="from bob", text="x")          # From is always the caller
    [got] = mail.items(ALICE)
    assert got["from"] == [BOB]
