"""Issue 19 item 7: the admin pages live in the web app's shell. An administrator signed in at ``/``
reaches the users list through the **Admin** navigation and adds a user there; a user who is no
administrator sees no Admin navigation and the admin API answers their session 403. (``/admin``
stays as it was: tests/e2e/test_admin_*_chromium.py.) Playwright with Debian's ``chromium``."""

from __future__ import annotations

import imaplib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import TauDaemon

pytestmark = pytest.mark.e2e
sync_api = pytest.importorskip("playwright.sync_api")
sync_api.expect.set_options(timeout=15_000)

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
ERIN, ERIN_PASSWORD = "erin@example.test", "erin-Pa55-long"
CHROMIUM = shutil.which("chromium")
ENV = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    if CHROMIUM is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium)")
    d = TauDaemon(tmp_path_factory.mktemp("admin-shell"), listeners=("imap", "http"), extra=ENV)
    try:
        d.init()
        d.cli("user", "add", ALICE, "--admin", "--password-stdin", input=PASSWORD.encode())
        d.start()
        bob = json.dumps({"address": BOB, "password": PASSWORD}).encode()
        status, _, body = d.http("POST", "/api/admin/users", bob, {"Content-Type": "application/json"},
                                 token=d.token(ALICE, PASSWORD))
        assert status == 201, body
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


def signed_in(browser: Any, daemon: TauDaemon, user: str) -> tuple[Any, list[str]]:
    page = browser.new_context().new_page()
    errors: list[str] = []  # script exceptions and console errors (a CSP violation is one)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(daemon.url + "/")
    page.get_by_label("Email").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Apps").wait_for()
    return page, errors


def test_an_admin_adds_a_user_from_the_admin_view_of_the_shell(browser: Any, daemon: TauDaemon) -> None:
    expect = sync_api.expect
    page, errors = signed_in(browser, daemon, ALICE)
    page.get_by_role("navigation", name="Apps").get_by_role("link", name="Admin", exact=True).click()
    expect(page).to_have_url(daemon.url + "/#admin")
    users = page.get_by_role("table", name="Users")
    expect(users).to_contain_text(BOB)
    form = page.get_by_role("form", name="Add a user")
    form.get_by_label("Address").fill(ERIN)
    form.get_by_label("Initial password").fill(ERIN_PASSWORD)
    form.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status").filter(has_text=f"{ERIN} added")).to_be_visible()
    expect(users).to_contain_text(ERIN)
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"], timeout=15)
    try:
        assert imap.login(ERIN, ERIN_PASSWORD)[0] == "OK"  # a real account, not a row on a page
    finally:
        imap.logout()
    # the other apps are one click away, in the same page and session
    page.get_by_role("link", name="Mail", exact=True).click()
    expect(page.get_by_role("button", name="New message")).to_be_visible()
    assert not [e for e in errors if "Failed to load resource" not in e], errors
    page.context.close()


def test_a_user_who_is_no_admin_sees_no_admin_view_and_the_api_refuses(browser: Any, daemon: TauDaemon) -> None:
    expect = sync_api.expect
    page, _ = signed_in(browser, daemon, BOB)
    expect(page.get_by_role("link", name="Mail", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    page.goto(daemon.url + "/#admin")  # typed by hand: the shell opens Mail instead
    expect(page.get_by_role("button", name="New message")).to_be_visible()
    expect(page.get_by_role("table", name="Users")).to_have_count(0)
    status = page.evaluate("async () => (await fetch('/api/admin/users', {credentials: 'same-origin'})).status")
    assert status == 403  # bob's own browser session
    assert daemon.http("GET", "/api/admin/users", token=daemon.token(BOB, PASSWORD))[0] == 403
    page.context.close()


@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)])
def test_the_admin_and_chat_views_are_photographed(browser: Any, daemon: TauDaemon, width: int, height: int) -> None:
    """Screenshots of the shell's Admin and Chat views (issue 19: every page at both sizes), into
    tests/web/screenshots; the phone size in the dark theme, as the other views' pictures."""
    expect = sync_api.expect
    scheme = "dark" if width < 600 else "light"
    page = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme).new_page()
    page.goto(daemon.url + "/")
    page.get_by_label("Email").fill(ALICE)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Apps").wait_for()
    page.goto(daemon.url + "/#admin")
    expect(page.get_by_role("table", name="Users")).to_contain_text(BOB)
    _shoot(page, f"admin-{width}x{height}")
    page.goto(daemon.url + "/#chat")
    expect(page.get_by_role("navigation", name="Chats")).to_be_visible()
    _shoot(page, f"chat-{width}x{height}")
    page.context.close()


def _shoot(page: Any, name: str) -> None:
    shots = Path(__file__).resolve().parents[1] / "web" / "screenshots"
    page.wait_for_timeout(300)  # the last render settles
    page.screenshot(path=str(shots / f"{name}.png"))
