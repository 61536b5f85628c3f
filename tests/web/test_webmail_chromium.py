"""Issue 19's webmail in Chromium, checked through IMAP: conversations grouped as the server's
THREAD=REFERENCES groups them, drafts saved where IMAP sees them (``\\Draft``, in Drafts) and gone
once sent, To completing from contacts and collected addresses, OpenPGP "Encrypt" offered only
with a key (and bob then receives PGP armor), Archive, and dragging a message onto a folder.

One daemon and one signed-in tab for the module; elements are found by role and label.
"""

from __future__ import annotations

import imaplib
import json
import re
import smtplib
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from tests.support.daemon import TauDaemon
from tests.web.test_web_chromium import CHROMIUM, ENV, PASSWORD, WATCH, shoot, sign_in, violations

sync_api = pytest.importorskip("playwright.sync_api")
sync_api.expect.set_options(timeout=15_000)
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not CHROMIUM or not __import__("pathlib").Path(CHROMIUM).exists(),
                                                  reason="chromium not installed")]
ALICE, BOB, DAVE = "alice@example.test", "bob@example.test", "dave@example.test"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    d = TauDaemon(tmp_path_factory.mktemp("webmail"), listeners=("smtp", "imap", "http"), extra=ENV)
    try:
        d.init()
        for user in (ALICE, BOB, DAVE):
            d.add_user(user, PASSWORD)
        d.start()
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def page(daemon: TauDaemon) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(WATCH)
        tab = context.new_page()
        tab.goto(daemon.url + "/")
        sign_in(tab)
        sync_api.expect(tab.get_by_role("button", name="New message")).to_be_visible()
        yield tab
        assert not [v for v in violations(tab) if v.startswith("script")]
        browser.close()


def api(daemon: TauDaemon, user: str, method: str, path: str, body: Any = None) -> Any:
    status, _, data = daemon.http(method, path, json.dumps(body).encode() if body is not None else None,
                                  {"Content-Type": "application/json"}, token=daemon.token(user, PASSWORD))
    assert status < 300, data
    return json.loads(data) if data else None


def deliver(daemon: TauDaemon, subject: str, text: str, sender: str = "Carol <carol@remote.test>",
            **headers: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ALICE, subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(text)
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as smtp:
        smtp.send_message(msg)


def imap_until(daemon: TauDaemon, user: str, check: Callable[[imaplib.IMAP4], Any], what: str) -> Any:
    """``check``'s first truthy answer over a fresh IMAP session, polled for up to 15 s."""
    deadline = time.monotonic() + 15
    while True:
        with imaplib.IMAP4("127.0.0.1", daemon.ports["imap"]) as imap:
            imap.login(user, PASSWORD)
            found = check(imap)
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.25)


def find(imap: imaplib.IMAP4, mailbox: str, subject: str) -> list[bytes]:
    imap.select(mailbox)
    _, data = imap.uid("SEARCH", "SUBJECT", f'"{subject}"')
    return data[0].split()


def open_folder(page: Any, name: str) -> None:
    page.get_by_role("navigation", name="Folders").get_by_role("button", name=re.compile(f"^{name}")).click()


def compose(page: Any) -> Any:
    page.get_by_role("button", name="New message").click()
    return page.get_by_role("form", name="New message")


def test_a_thread_opens_with_all_its_messages_in_imap_thread_order(page: Any, daemon: TauDaemon) -> None:
    deliver(daemon, "Trip plans", "Shall we go to the lake?", Message_ID="<t1@remote.test>")
    deliver(daemon, "Re: Trip plans", "Yes, Saturday works.", "Dave <dave@remote.test>",
            Message_ID="<t2@remote.test>", In_Reply_To="<t1@remote.test>", References="<t1@remote.test>")
    deliver(daemon, "Something else", "Unrelated.")
    deliver(daemon, "Re: Trip plans", "I will bring the boat.", Message_ID="<t3@remote.test>",
            In_Reply_To="<t2@remote.test>", References="<t1@remote.test> <t2@remote.test>")

    def imap_thread(imap: imaplib.IMAP4) -> list[str]:
        imap.select("INBOX")
        _, data = imap.uid("THREAD", "REFERENCES", "UTF-8", "ALL")
        group = next((g for g in re.findall(r"\(([^()]*(?:\([^()]*\))*[^()]*)\)", data[0].decode())
                      if len(re.findall(r"\d+", g)) == 3), None)
        if group is None:
            return []
        texts = []
        for uid in re.findall(r"\d+", group):
            _, body = imap.uid("FETCH", uid, "(BODY.PEEK[TEXT])")
            texts.append(body[0][1].decode().strip())
        return texts

    order = imap_until(daemon, ALICE, imap_thread, "IMAP never threaded the three messages")
    assert order == ["Shall we go to the lake?", "Yes, Saturday works.", "I will bring the boat."]
    messages = page.get_by_role("list", name="Messages")
    messages.get_by_role("button", name=re.compile("I will bring the boat")).click()
    thread = page.get_by_role("list", name="Conversation, 3 messages")
    sync_api.expect(thread.get_by_role("listitem")).to_have_count(3)
    items = thread.get_by_role("listitem")
    sync_api.expect(items.nth(0)).to_contain_text(order[0])
    sync_api.expect(items.nth(1)).to_contain_text(order[1])
    sync_api.expect(items.nth(2)).to_have_attribute("aria-current", "true")  # the open one, in full
    sync_api.expect(items.nth(2)).to_contain_text(order[2])
    thread.get_by_role("button", name=re.compile("^Open message from .*carol", re.I)).click()
    sync_api.expect(page.get_by_role("heading", name="Trip plans", exact=True)).to_be_visible()
    shoot(page, "mail-thread-1280x800")


def test_a_reply_joins_its_conversation_for_imap_and_in_the_browser(page: Any, daemon: TauDaemon) -> None:
    open_folder(page, "Inbox")
    page.get_by_role("list", name="Messages").get_by_role("button", name=re.compile("Shall we go to the lake")).click()
    page.get_by_role("toolbar", name="Message actions").get_by_role("button", name="Reply", exact=True).click()
    page.get_by_role("form", name="New message").get_by_label("Message").press("Control+Home")
    page.get_by_role("form", name="New message").get_by_label("Message").press_sequentially("Count me in. ")
    page.get_by_role("form", name="New message").get_by_role("button", name="Send").click()
    sync_api.expect(page.get_by_role("status").filter(has_text="Message sent.")).to_be_visible()

    def parents(imap: imaplib.IMAP4) -> bytes | None:
        uids = find(imap, "Sent", "Re: Trip plans")
        fields = "(BODY.PEEK[HEADER.FIELDS (IN-REPLY-TO REFERENCES)])"
        return imap.uid("FETCH", uids[0], fields)[1][0][1] if uids else None

    headers = imap_until(daemon, ALICE, parents, "the reply never reached Sent")
    assert b"In-Reply-To: <t1@remote.test>" in headers and b"References: <t1@remote.test>" in headers
    page.get_by_role("list", name="Messages").get_by_role("button", name=re.compile("Yes, Saturday works")).click()
    thread = page.get_by_role("list", name="Conversation, 4 messages")
    sync_api.expect(thread.get_by_role("listitem").filter(has_text="Count me in.")).to_have_count(1)


def test_a_draft_is_saved_to_drafts_reopened_and_removed_when_sent(page: Any, daemon: TauDaemon) -> None:
    form = compose(page)
    form.get_by_role("combobox", name="To").fill(BOB)
    form.get_by_label("Subject").fill("Plans for the draft")
    form.get_by_label("Message").fill("First words.")
    sync_api.expect(form.get_by_role("status")).to_contain_text("Draft saved")  # autosaved

    def draft_flags(imap: imaplib.IMAP4) -> bytes | None:
        uids = find(imap, "Drafts", "Plans for the draft")
        if not uids:
            return None
        _, data = imap.uid("FETCH", uids[0], "(FLAGS BODY.PEEK[TEXT])")
        return data[0][0] + data[0][1] if b"First words." in data[0][1] else None

    assert b"\\Draft" in imap_until(daemon, ALICE, draft_flags, "the draft never reached Drafts")
    open_folder(page, "Drafts")
    page.get_by_role("list", name="Messages").get_by_role("button", name=re.compile("Plans for the draft")).click()
    form = page.get_by_role("form", name="New message")
    sync_api.expect(form.get_by_label("Subject")).to_have_value("Plans for the draft")
    sync_api.expect(form.get_by_role("combobox", name="To")).to_have_value(re.compile(BOB))
    form.get_by_label("Message").fill("First words. And the rest.")
    form.get_by_role("button", name="Send").click()
    sync_api.expect(page.get_by_role("status").filter(has_text="Message sent.")).to_be_visible()

    def received(imap: imaplib.IMAP4) -> bytes | None:
        uids = find(imap, "INBOX", "Plans for the draft")
        return imap.uid("FETCH", uids[0], "(BODY.PEEK[TEXT])")[1][0][1] if uids else None

    assert b"And the rest." in imap_until(daemon, BOB, received, "bob never received the draft")
    assert imap_until(daemon, ALICE, lambda imap: find(imap, "Drafts", "Plans for the draft") == [],
                      "the sent draft stayed in Drafts")


def test_to_completes_from_contacts_and_collected_addresses(page: Any, daemon: TauDaemon) -> None:
    api(daemon, ALICE, "POST", "/api/contacts", {"name": "Robert Builder", "emails": [BOB]})
    api(daemon, ALICE, "POST", "/api/emails", {"to": [DAVE], "subject": "hello dave", "text": "hi"})  # collects dave
    form = compose(page)
    to = form.get_by_role("combobox", name="To")
    to.press_sequentially("Robe")
    form.get_by_role("option", name=f"Robert Builder <{BOB}>").click()
    sync_api.expect(to).to_have_value(f"Robert Builder <{BOB}>, ")
    to.press_sequentially("dav")
    sync_api.expect(form.get_by_role("option", name=DAVE)).to_be_visible()
    to.press("Enter")
    sync_api.expect(to).to_have_value(re.compile(f"^Robert Builder <{BOB}>, (dave )?<?{DAVE}>?, $"))
    form.get_by_label("Subject").fill("Completed addresses")
    form.get_by_role("button", name="Send").click()
    sync_api.expect(page.get_by_role("status").filter(has_text="Message sent.")).to_be_visible()
    for user in (BOB, DAVE):
        assert imap_until(daemon, user, lambda imap: find(imap, "INBOX", "Completed addresses"), f"{user} got nothing")


def test_encrypt_is_offered_once_bob_has_a_key_and_bob_receives_pgp(page: Any, daemon: TauDaemon) -> None:
    from tests.mail.test_api_pgp import keypair

    form = compose(page)
    encrypt, sign = form.get_by_role("checkbox", name="Encrypt"), form.get_by_role("checkbox", name="Sign")
    form.get_by_role("combobox", name="To").fill(BOB)
    sync_api.expect(encrypt).to_be_disabled()
    sync_api.expect(encrypt).to_have_accessible_description(f"No OpenPGP key for {BOB}.")
    sync_api.expect(sign).to_be_disabled()
    sync_api.expect(sign).to_have_accessible_description(re.compile("Upload your OpenPGP private key"))
    api(daemon, BOB, "PUT", "/api/keys/pgp", {"public_key": keypair(BOB)[0]})
    form.get_by_role("combobox", name="To").fill("")
    form.get_by_role("combobox", name="To").press_sequentially(BOB)
    sync_api.expect(encrypt).to_be_enabled()
    encrypt.check()
    form.get_by_label("Subject").fill("Sealed")
    form.get_by_label("Message").fill("Only bob can read this.")
    form.evaluate("form => form.parentElement.scrollTo(0, 0)")
    shoot(page, "mail-compose-1280x800")
    page.set_viewport_size({"width": 390, "height": 844})
    shoot(page, "mail-compose-390x844")
    page.set_viewport_size({"width": 1280, "height": 800})
    form.get_by_role("button", name="Send").click()
    sync_api.expect(page.get_by_role("status").filter(has_text="Message sent.")).to_be_visible()

    def body(imap: imaplib.IMAP4) -> bytes | None:
        uids = find(imap, "INBOX", "Sealed")
        return imap.uid("FETCH", uids[0], "(BODY.PEEK[])")[1][0][1] if uids else None

    raw = imap_until(daemon, BOB, body, "bob never received the encrypted message")
    assert b"-----BEGIN PGP MESSAGE-----" in raw and b"multipart/encrypted" in raw
    assert b"Only bob can read this." not in raw


def test_archive_and_dragging_onto_a_folder_move_the_message(page: Any, daemon: TauDaemon) -> None:
    deliver(daemon, "Keep for later", "archive me")
    deliver(daemon, "Probably spam", "drag me")
    open_folder(page, "Inbox")
    messages = page.get_by_role("list", name="Messages")
    messages.get_by_role("button", name=re.compile("Keep for later")).click()
    page.get_by_role("toolbar", name="Message actions").get_by_role("button", name="Archive").click()
    sync_api.expect(page.get_by_role("status").filter(has_text="Archived.")).to_be_visible()
    assert imap_until(daemon, ALICE, lambda imap: find(imap, "Archive", "Keep for later")
                      and not find(imap, "INBOX", "Keep for later"), "IMAP never saw the archived message")
    row = messages.get_by_role("button", name=re.compile("Probably spam"))
    row.drag_to(page.get_by_role("navigation", name="Folders").get_by_role("button", name="Junk"))
    sync_api.expect(messages.get_by_role("button", name=re.compile("Probably spam"))).to_have_count(0)
    assert imap_until(daemon, ALICE, lambda imap: find(imap, "Junk", "Probably spam")
                      and not find(imap, "INBOX", "Probably spam"), "IMAP never saw the dragged message moved")
