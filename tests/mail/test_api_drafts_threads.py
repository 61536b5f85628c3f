"""REST for the webmail: drafts in Drafts (``\\Draft``, replaced by a new version, gone once sent),
``GET /api/emails?thread=ID`` (the server's THREAD=REFERENCES), ``GET /api/keys/pgp/known``."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from tests.mail.test_api_pgp import keypair
from tests.support.harness import resolve
from tests.support.http import assert_json_error
from tests.support.mail_api import ALICE, BOB, mail_world


@pytest.fixture
def mail(tmp_path, db_url):
    yield from mail_world(tmp_path, db_url)


def imap_view(mail, user: str, box: str) -> list[tuple[tuple[str, ...], bytes]]:
    """(flags, raw) of every message in ``box``, read from the store IMAP serves."""
    found = resolve(mail.store.get_mailbox(user, box))
    metas = resolve(mail.store.fetch(found.id, resolve(mail.store.uids(found.id))))
    return [(tuple(m.flags), resolve(mail.store.read(m.blob_key))) for m in metas]


def test_a_draft_lands_in_drafts_flagged_and_a_new_version_replaces_it(mail):
    r = mail.api("POST", "/api/emails/drafts", {"to": "bo", "subject": "Half done", "text": "v1", "bcc": BOB})
    assert r.status == 201 and r.json()["mailbox"] == "Drafts", r.body
    [(flags, raw)] = imap_view(mail, ALICE, "Drafts")
    assert set(flags) == {"\\Draft", "\\Seen"} and b"v1" in raw and b"Bcc: " + BOB.encode() in raw
    again = mail.api("PUT", f"/api/emails/drafts/{r.json()['id']}", {"to": [BOB], "subject": "Done", "text": "v2"})
    assert again.status == 200 and again.json()["id"] != r.json()["id"]
    [(_, raw)] = imap_view(mail, ALICE, "Drafts")
    assert b"v2" in raw and b"v1" not in raw
    assert mail.api("GET", f"/api/emails/{r.json()['id']}").status == 404


def test_sending_a_draft_removes_it(mail):
    draft = mail.api("POST", "/api/emails/drafts", {"to": [BOB], "subject": "Soon", "text": "x"}).json()["id"]
    mail.send(to=[BOB], subject="Soon", text="x", draft_id=draft)
    assert imap_view(mail, ALICE, "Drafts") == []
    assert [i["subject"] for i in mail.items(BOB)] == ["Soon"]


def test_only_drafts_can_be_replaced_or_sent_as_drafts(mail):
    mail.send(to=[BOB], subject="real", text="x")
    [item] = mail.items(BOB)
    assert_json_error(mail.api("PUT", f"/api/emails/drafts/{item['id']}", {"text": "y"}, user=BOB), 404, "not_found")
    assert_json_error(mail.api("POST", "/api/emails", {"to": [ALICE], "text": "y", "draft_id": item["id"]}, user=BOB),
                      404, "not_found")
    assert_json_error(mail.api("POST", "/api/emails/drafts", {"to": "a\r\nBcc: x"}), 400, "invalid_request")
    draft = mail.api("POST", "/api/emails/drafts", {"text": "mine"}).json()["id"]
    assert_json_error(mail.api("PUT", f"/api/emails/drafts/{draft}", {"text": "theirs"}, user=BOB), 404, "not_found")


def _deliver(mail, subject: str, mid: str, refs: str = "") -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "carol@remote.test", BOB, subject, mid
    if refs:
        msg["References"], msg["In-Reply-To"] = refs, refs.split()[-1]
    msg.set_content(subject)
    resolve(mail.store.append(BOB, "INBOX", bytes(msg)))


def test_thread_lists_the_conversation_in_thread_order(mail):
    _deliver(mail, "Plan", "<a@r>")
    _deliver(mail, "Other", "<x@r>")
    _deliver(mail, "Re: Plan", "<b@r>", "<a@r>")
    _deliver(mail, "Re: Plan", "<c@r>", "<a@r> <b@r>")
    last = mail.items(BOB)[0]["id"]
    r = mail.api("GET", f"/api/emails?thread={last}", user=BOB)
    assert r.status == 200 and [i["message_id"] for i in r.json()["items"]] == ["<a@r>", "<b@r>", "<c@r>"]
    other = next(i["id"] for i in mail.items(BOB) if i["subject"] == "Other")
    assert [i["subject"] for i in mail.items(BOB, f"thread={other}")] == ["Other"]
    assert mail.api("GET", f"/api/emails?thread={last}").status == 404    # alice: not hers


def test_known_keys_say_what_encrypt_and_sign_can_do(mail):
    mail.api("PUT", "/api/keys/pgp", {"public_key": keypair(BOB)[0]}, user=BOB)
    r = mail.api("GET", f"/api/keys/pgp/known?addresses={BOB},carol@remote.test")
    assert r.json() == {"sign": False, "own_key": False, "addresses": {BOB: True, "carol@remote.test": False}}


def test_a_reply_names_its_parents_and_joins_the_conversation_from_sent(mail):
    _deliver(mail, "Plan", "<a@r>")
    [item] = mail.items(BOB)
    mail.send(user=BOB, to=["carol@remote.test"], subject="Re: Plan", text="ok", in_reply_to="<a@r>",
              references=["<a@r>"])
    [sent] = mail.items(BOB, "mailbox=Sent")
    raw = mail.api("GET", f"/api/emails/{sent['id']}?raw=1", user=BOB).body
    assert b"In-Reply-To: <a@r>" in raw and b"References: <a@r>" in raw
    convo = mail.items(BOB, f"thread={item['id']}")
    assert [(i["mailbox"], i["subject"]) for i in convo] == [("INBOX", "Plan"), ("Sent", "Re: Plan")]
    for bad in ({"in_reply_to": "a@r"}, {"references": ["<a@r>", "x"]}, {"references": "<a@r>"}):
        assert_json_error(mail.api("POST", "/api/emails", {"to": [ALICE], "text": "x", **bad}, user=BOB),
                          400, "invalid_request")


def test_the_thread_follows_new_and_removed_messages_but_not_flags(mail):
    _deliver(mail, "Plan", "<a@r>")
    first = mail.items(BOB)[0]["id"]
    ids = lambda: [i["message_id"] for i in mail.items(BOB, f"thread={first}")]  # noqa: E731
    assert ids() == ["<a@r>"]
    _deliver(mail, "Re: Plan", "<b@r>", "<a@r>")
    assert ids() == ["<a@r>", "<b@r>"]
    reply = next(i for i in mail.items(BOB) if i["message_id"] == "<b@r>")
    mail.api("PATCH", f"/api/emails/{reply['id']}", {"read": True, "starred": True}, user=BOB)
    assert [i["starred"] for i in mail.items(BOB, f"thread={first}")] == [False, True]
    mail.api("DELETE", f"/api/emails/{reply['id']}", user=BOB)
    assert ids() == ["<a@r>"]
