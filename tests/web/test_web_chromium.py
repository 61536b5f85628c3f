"""Issue 19 in a real browser: the web app driven through Playwright on Debian's ``chromium``.

One daemon and one browser for the module. Alice signs in with labelled fields, reads a mail
delivered over SMTP, sends one to bob (who finds it over IMAP) and sees new mail arrive without a
reload; a hostile mail (script, ``onerror`` image, HTML in the subject and display name) shows
as text and runs nothing (no dialog, no flag set, no script CSP violation); a share link with a
hostile file name opens anonymously as a page. Elements are found by role and label, as a
screen reader finds them. Screenshots at 1280x800 and 390x844 go to ``tests/web/screenshots``.
"""

from __future__ import annotations

import imaplib
import json
import re
import shutil
import smtplib
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.daemon import TauDaemon

sync_api = pytest.importorskip("playwright.sync_api")
# assertions wait up to 15 s (Playwright's default is 5): the suite runs several files at once
# on two cores, and a sign-in's argon2id hash alone can take seconds then
sync_api.expect.set_options(timeout=15_000)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed")]
ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
ENV = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}
SHOTS = Path(__file__).parent / "screenshots"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
#: runs before any page script, in every frame: records CSP violations and dialogs
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(e.effectiveDirective + " " + e.blockedURI));
"""
HOSTILE_NAME = '<img src=x onerror="top.__pwned=1">Mallory'
HOSTILE_SUBJECT = '<script>top.__pwned=1</script>Invoice <b>due</b>'
HOSTILE_HTML = ('<p>Please pay.</p><script>top.__pwned=1;alert(1)</script>'
                '<img src=x onerror="top.__pwned=1;alert(2)"><img src="https://tracker.invalid/p.png">'
                '<a href="javascript:top.__pwned=1">click</a><svg onload="top.__pwned=1"></svg>')


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    d = TauDaemon(tmp_path_factory.mktemp("web"), listeners=("smtp", "imap", "http"), extra=ENV)
    try:
        d.init()
        d.cli("user", "add", ALICE, "--admin", "--password-stdin", input=PASSWORD.encode())
        d.add_user(BOB, PASSWORD)
        d.start()
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser: Any, daemon: TauDaemon) -> Iterator[Any]:
    """Alice's tab (signed in by the first test and kept for the others)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(WATCH)
    tab = context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    tab.goto(daemon.url + "/")
    yield tab
    context.close()


def deliver(daemon: TauDaemon, to: str, subject: str, text: str, html: str | None = None,
            sender: str = "Carol <carol@remote.test>") -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as smtp:
        smtp.send_message(msg)


def violations(page: Any) -> list[str]:
    found = []
    for frame in page.frames:
        try:
            found += frame.evaluate("window.__violations || []")
        except Exception:  # a frame navigating away
            pass
    return found


def sign_in(page: Any, user: str = ALICE) -> None:
    page.get_by_label("Email").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Apps").wait_for()


def shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_sign_in_shows_the_shell_with_every_app(page: Any) -> None:
    expect = sync_api.expect
    expect(page.get_by_role("heading", name="Sign in to tau")).to_be_visible()
    page.get_by_label("Email").fill(ALICE)
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong")
    sign_in(page)
    nav = page.get_by_role("navigation", name="Apps")
    for name in ("Mail", "Chat", "Calendar", "Files", "Contacts", "Admin"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    assert page.evaluate("document.cookie") == ""  # the session is HttpOnly: no script can read it
    page.get_by_role("link", name="Calendar", exact=True).click()
    expect(page.get_by_role("button", name=re.compile(r"^New event on ")).first).to_be_visible()
    page.get_by_role("link", name="Mail", exact=True).click()
    expect(page.get_by_role("button", name="New message")).to_be_visible()


def test_mail_delivered_over_smtp_is_read_in_the_browser(page: Any, daemon: TauDaemon) -> None:
    expect = sync_api.expect
    deliver(daemon, ALICE, "Lunch on Friday?", "Shall we meet at noon?",
            "<p>Shall we meet at <b>noon</b>?</p>")
    page.reload()
    inbox = page.get_by_role("button", name="Inbox")
    expect(inbox).to_contain_text("1")
    page.get_by_role("list", name="Messages").get_by_role("button", name="Lunch on Friday?").click()
    expect(page.get_by_role("heading", name="Lunch on Friday?")).to_be_visible()
    body = page.frame_locator("iframe[title='Message body']")
    expect(body.get_by_text("noon")).to_be_visible()
    expect(inbox).not_to_contain_text("1")  # opened: read


def test_attachment_is_listed_downloaded_and_saved_to_files(page: Any, daemon: TauDaemon) -> None:
    expect = sync_api.expect
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Carol <carol@remote.test>", ALICE, "Minutes attached"
    msg.set_content("see the file")
    msg.add_attachment(b"minutes of the meeting", maintype="text", subtype="plain", filename="minutes.txt")
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as smtp:
        smtp.send_message(msg)
    row = page.get_by_role("list", name="Messages").get_by_role("button", name="Minutes attached")
    expect(row).to_be_visible()
    row.click()
    files = page.get_by_role("region", name="Attachments")
    with page.expect_download() as download:
        files.get_by_role("link", name="minutes.txt").click()
    assert Path(download.value.path()).read_bytes() == b"minutes of the meeting"
    files.get_by_role("button", name="Save minutes.txt to Files").click()
    expect(files.get_by_role("status")).to_contain_text("/Mail attachments/minutes.txt")


def test_compose_sends_to_bob_who_receives_it_over_imap(page: Any, daemon: TauDaemon) -> None:
    expect = sync_api.expect
    page.get_by_role("button", name="New message").click()
    form = page.get_by_role("form", name="New message")
    form.get_by_label("To").fill(BOB)
    form.get_by_label("Subject").fill("Hello from the web")
    form.get_by_label("Message").fill("Sent from tau's webmail.")
    form.get_by_role("button", name="Send").click()
    expect(page.get_by_role("status").filter(has_text="Message sent.")).to_be_visible()
    deadline = time.monotonic() + 10
    while True:
        with imaplib.IMAP4("127.0.0.1", daemon.ports["imap"]) as imap:
            imap.login(BOB, PASSWORD)
            imap.select("INBOX")
            _, found = imap.search(None, "SUBJECT", '"Hello from the web"')
            if found[0]:
                _, data = imap.fetch(found[0].split()[0], "(BODY[TEXT])")
                assert b"Sent from tau's webmail." in data[0][1]
                break
        assert time.monotonic() < deadline, "bob never received the message"
        time.sleep(0.2)


def test_new_mail_appears_without_reload(page: Any, daemon: TauDaemon) -> None:
    page.get_by_role("button", name="Inbox").click()
    deliver(daemon, ALICE, "Arrives live", "No reload needed.")
    messages = page.get_by_role("list", name="Messages")
    sync_api.expect(messages.get_by_role("button", name="Arrives live")).to_be_visible()


def test_hostile_mail_shows_as_text_and_runs_nothing(page: Any, daemon: TauDaemon) -> None:
    expect = sync_api.expect
    deliver(daemon, ALICE, HOSTILE_SUBJECT, "plain part", HOSTILE_HTML, sender=f'"{HOSTILE_NAME}" <mallory@evil.test>')
    messages = page.get_by_role("list", name="Messages")
    row = messages.get_by_role("button", name="Invoice")
    expect(row).to_be_visible()
    row.click()
    expect(page.get_by_role("heading", name=HOSTILE_SUBJECT)).to_be_visible()  # the markup, as text
    expect(page.get_by_text("onerror=", exact=False).first).to_be_visible()
    body = page.frame_locator("iframe[title='Message body']")
    expect(body.get_by_text("Please pay.")).to_be_visible()
    expect(page.get_by_role("button", name="Show remote images")).to_be_visible()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []
    scripts = [v for v in violations(page) if v.startswith("script-src")]
    assert scripts == [], scripts


def test_search_flag_move_and_delete_from_the_keyboard(page: Any, daemon: TauDaemon) -> None:
    expect = sync_api.expect
    deliver(daemon, ALICE, "Quarterly report", "the numbers are in")
    messages = page.get_by_role("list", name="Messages")
    expect(messages.get_by_role("button", name="Quarterly report")).to_be_visible()
    page.get_by_label("Search mail").fill("numbers")
    page.get_by_label("Search mail").press("Enter")
    expect(messages.get_by_role("button")).to_have_count(1)
    messages.get_by_role("button", name="Quarterly report").focus()
    page.keyboard.press("Enter")
    toolbar = page.get_by_role("toolbar", name="Message actions")
    toolbar.get_by_role("button", name="Flag").click()
    expect(toolbar.get_by_role("button", name="Unflag")).to_be_visible()
    toolbar.get_by_role("button", name="Mark unread").click()
    expect(toolbar.get_by_role("button", name="Mark read")).to_be_visible()
    page.get_by_label("Move to folder").select_option("Archive")
    expect(page.get_by_role("status").filter(has_text="Moved to Archive.")).to_be_visible()
    page.get_by_role("button", name="Archive").click()
    archived = messages.get_by_role("button", name="Quarterly report")
    expect(archived).to_contain_text("★")
    archived.click()
    toolbar.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status").filter(has_text="Message deleted.")).to_be_visible()
    page.get_by_role("button", name="Trash").click()
    expect(messages.get_by_role("button", name="Quarterly report")).to_be_visible()
    page.get_by_role("button", name="Inbox").click()
    expect(messages.get_by_role("button", name="Quarterly report")).to_have_count(0)  # Inbox's list now
    rows = messages.get_by_role("button")
    rows.first.focus()
    page.keyboard.press("ArrowDown")
    expect(rows.nth(1)).to_be_focused()


def test_share_page_opens_anonymously(browser: Any, daemon: TauDaemon) -> None:
    expect = sync_api.expect
    token = daemon.token(ALICE, PASSWORD)
    name = '<img src=x onerror="top.__pwned=1">report.txt'
    status, _, body = daemon.http("POST", "/api/files?path=/" + quote(name), b"quarterly numbers", token=token)
    assert status == 201, body
    file_id = json.loads(body)["id"]
    status, _, body = daemon.http("POST", "/api/shares", json.dumps({"file_id": file_id}).encode(),
                                  {"Content-Type": "application/json"}, token=token)
    assert status == 201, body
    link = "/s/" + json.loads(body)["token"]
    context = browser.new_context()  # nobody signed in
    context.add_init_script(WATCH)
    anon = context.new_page()
    anon.goto(daemon.url + link)
    expect(anon.get_by_role("heading", name=name)).to_be_visible()
    expect(anon.get_by_text("17 bytes")).to_be_visible()
    with anon.expect_download() as download:
        anon.get_by_role("link", name="Download").click()
    assert Path(download.value.path()).read_bytes() == b"quarterly numbers"
    assert anon.evaluate("window.__pwned") is None and violations(anon) == []
    missing = anon.goto(daemon.url + "/s/no-such-token")
    assert missing.status == 404
    expect(anon.get_by_role("heading", name="Link not found")).to_be_visible()
    context.close()


@pytest.mark.parametrize("size", sorted(SIZES))
def test_screenshots(browser: Any, daemon: TauDaemon, size: str) -> None:
    """Sign-in, the message list and a message, at desktop size (light) and phone size (dark)."""
    width, height = SIZES[size]
    scheme = "dark" if size == "phone" else "light"  # both themes get looked at
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    tab = context.new_page()
    tab.goto(daemon.url + "/")
    tab.get_by_role("button", name="Sign in").wait_for()
    shoot(tab, f"signin-{width}x{height}")
    sign_in(tab)
    row = tab.get_by_role("list", name="Messages").get_by_role("button", name="Lunch on Friday?")
    row.wait_for()
    shoot(tab, f"mail-list-{width}x{height}")
    row.click()
    tab.frame_locator("iframe[title='Message body']").get_by_text("noon").wait_for()
    shoot(tab, f"mail-read-{width}x{height}")
    context.close()


def test_mail_socket_takes_the_session_cookie_only_from_its_own_origin(daemon: TauDaemon) -> None:
    """``/ws/mail`` opens with the session cookie from tau's own page; the same cookie with another
    site's ``Origin`` (cross-site WebSocket hijacking) is closed with 4401."""
    import asyncio
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from tau.client.ws import Closed, Socket

    req = urllib.request.Request(daemon.url + "/api/session", method="POST", headers={
        "Content-Type": "application/json"}, data=json.dumps({"username": ALICE, "password": PASSWORD}).encode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        cookie = "; ".join(v.split(";")[0] for k, v in resp.headers.items() if k.lower() == "set-cookie")
    host = daemon.url.split("://")[1]

    async def close_code(origin: str) -> int | None:
        sock = await Socket.connect(daemon.url, "/ws/mail", None, headers={"Cookie": cookie, "Origin": origin})
        deliver(daemon, ALICE, "socket check", "x")
        try:
            frame = await sock.recv(5)
            assert frame["type"] == "mailbox" and frame["mailbox"] == "INBOX"
            return None
        except Closed as exc:
            return exc.code
        finally:
            sock.abort()

    def run(origin: str) -> int | None:  # in a thread: Playwright's sync API holds this one's loop
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, close_code(origin)).result()

    assert run(f"http://{host}") is None
    assert run("http://evil.example") == 4401


def test_two_factor_sign_in_asks_for_the_one_time_code(browser: Any, daemon: TauDaemon) -> None:
    """Runs last: bob turns 2FA on (his password alone no longer signs in, IMAP included)."""
    import base64
    from urllib.parse import parse_qs, urlsplit

    from tau.auth.totp import totp

    expect = sync_api.expect
    token = daemon.token(BOB, PASSWORD)
    headers = {"Content-Type": "application/json"}
    status, _, body = daemon.http("POST", "/api/account/2fa", b'{"action": "setup"}', headers, token=token)
    assert status == 200, body
    b32 = parse_qs(urlsplit(json.loads(body)["otpauth_uri"]).query)["secret"][0]
    secret = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    now = time.time()
    status, _, body = daemon.http("POST", "/api/account/2fa", json.dumps(
        {"action": "confirm", "code": totp(secret, now)}).encode(), headers, token=token)
    assert status == 200, body
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(daemon.url + "/")
    tab.get_by_label("Email").fill(BOB)
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    code = tab.get_by_label("One-time code")
    expect(code).to_be_focused()
    code.fill(totp(secret, now + 30))  # the next step: the confirming code may not be replayed
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("navigation", name="Apps")).to_be_visible()
    expect(tab.get_by_role("link", name="Admin")).to_have_count(0)  # bob is no administrator
    context.close()
