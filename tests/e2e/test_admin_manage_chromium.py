"""Issue 18 item 9, in Chromium: an admin administers through ``/admin`` (Playwright for Python with
Debian's ``chromium``; no browser download). One daemon and one signed-in page for the module; each
test finds controls by role and accessible name, as a screen reader user would, and checks the
effect where a user feels it: IMAP logins, SMTP delivery, the DNS record to publish."""

from __future__ import annotations

import imaplib
import json
import os
import re
import shutil
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import TauDaemon

pytestmark = pytest.mark.e2e
sync_api = pytest.importorskip("playwright.sync_api")
# assertions wait up to 15 s (Playwright's default is 5): the suite runs several files at once
# on two cores, and a sign-in's argon2id hash alone can take seconds then
sync_api.expect.set_options(timeout=15_000)

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
CAROL, CAROL_PASSWORD = "carol@example.test", "carol-Pa55-long"
CHROMIUM = shutil.which("chromium")
ENV = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0", "TAU_DKIM_SIGN": "0"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    if CHROMIUM is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium)")
    d = TauDaemon(tmp_path_factory.mktemp("admin-ui"), listeners=("smtp", "imap", "http"), extra=ENV)
    try:
        d.init()
        d.cli("user", "add", ALICE, "--admin", "--password-stdin", input=PASSWORD.encode())
        d.start()
        bob = json.dumps({"address": BOB, "password": PASSWORD}).encode()
        status, _, body = d.http("POST", "/api/admin/users", bob, {"Content-Type": "application/json"},
                                 token=d.token(ALICE, PASSWORD))
        assert status == 201, body  # (the API, not a second `tau user add`: one process start less)
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def page(daemon: TauDaemon) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []  # script exceptions and console errors (a CSP violation is one)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(daemon.url + "/admin")
        login = page.get_by_role("form", name="Sign in")
        login.get_by_label("Address").fill(ALICE)
        login.get_by_label("Password").fill(PASSWORD)
        login.get_by_role("button", name="Sign in").click()
        sync_api.expect(page.get_by_role("table", name="Users")).to_contain_text(BOB)
        yield page
        keep = os.environ.get("TAU_TEST_ARTIFACTS")
        if keep:  # what the page looked like at the end, for a human to judge
            page.screenshot(path=str(Path(keep) / "admin-manage.png"), full_page=True)
        # failed requests are console errors too (the 401 of GET /api/session before signing in)
        assert not [e for e in errors if "Failed to load resource" not in e], errors
        browser.close()


def imap_login(daemon: TauDaemon, user: str, password: str) -> bool:
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"], timeout=15)
    try:
        imap.login(user, password)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.abort, OSError):
            pass


def admin_api(daemon: TauDaemon, path: str) -> Any:
    status, _, body = daemon.http("GET", path, token=daemon.token(ALICE, PASSWORD))
    assert status == 200, body
    return json.loads(body)


def manage(page: Any, address: str) -> Any:
    page.get_by_role("button", name=f"Manage {address}").click()
    panel = page.get_by_role("region", name=f"Account {address}")
    sync_api.expect(panel).to_be_visible()
    return panel


def test_add_a_user_with_an_initial_password_who_then_logs_in_over_imap(page: Any, daemon: TauDaemon) -> None:
    form = page.get_by_role("form", name="Add a user")
    form.get_by_label("Address").fill(CAROL)
    form.get_by_label("Display name").fill("Carol")
    form.get_by_label("Initial password").fill(CAROL_PASSWORD)
    form.get_by_role("button", name="Add user").click()
    sync_api.expect(page.get_by_role("status")).to_have_text(f"{CAROL} added")
    sync_api.expect(page.get_by_role("table", name="Users")).to_contain_text(CAROL)
    assert imap_login(daemon, CAROL, CAROL_PASSWORD)


def test_a_disabled_user_cannot_log_in(page: Any, daemon: TauDaemon) -> None:
    panel = manage(page, CAROL)
    panel.get_by_role("button", name="Disable account").click()
    sync_api.expect(panel.get_by_role("button", name="Enable account")).to_be_visible()
    assert not imap_login(daemon, CAROL, CAROL_PASSWORD)
    panel.get_by_role("button", name="Enable account").click()
    sync_api.expect(panel.get_by_role("button", name="Disable account")).to_be_visible()
    assert imap_login(daemon, CAROL, CAROL_PASSWORD)


def test_set_a_quota(page: Any, daemon: TauDaemon) -> None:
    panel = manage(page, CAROL)
    panel.get_by_role("form", name="Quota").get_by_label("Quota").fill("5G")
    panel.get_by_role("button", name="Save quota").click()
    sync_api.expect(page.get_by_role("status")).to_have_text(f"quota of {CAROL} saved")
    row = page.get_by_role("table", name="Users").get_by_role("row").filter(has_text=CAROL)
    sync_api.expect(row).to_contain_text("5.0 GiB")
    assert admin_api(daemon, f"/api/admin/users/{CAROL}")["quota_bytes"] == 5 * 2**30


def test_add_a_domain_and_see_its_dkim_txt_record(page: Any, daemon: TauDaemon) -> None:
    form = page.get_by_role("form", name="Add a domain")
    form.get_by_label("Domain name").fill("shop.test")
    form.get_by_role("button", name="Add domain").click()
    panel = page.get_by_role("region", name="Domain shop.test")
    sync_api.expect(panel).to_be_visible()
    sync_api.expect(panel.get_by_role("table", name="DNS records")).to_contain_text("shop.test.")
    keygen = panel.get_by_role("form", name="Generate a DKIM key")
    keygen.get_by_label("Algorithm").select_option("ed25519")
    keygen.get_by_role("button", name="Generate DKIM key").click()
    keys = panel.get_by_role("table", name="DKIM keys")
    sync_api.expect(keys).to_contain_text("tau-ed._domainkey.shop.test.")
    sync_api.expect(keys).to_contain_text('"v=DKIM1; k=ed25519; p=')


def test_add_an_alias_and_mail_to_it_arrives(page: Any, daemon: TauDaemon) -> None:
    form = page.get_by_role("form", name="Add an alias")
    form.get_by_label("Alias name").fill("sales")
    form.get_by_label("Alias domain").select_option("example.test")
    form.get_by_label("Delivers to").fill(BOB)
    form.get_by_role("button", name="Add alias").click()
    sync_api.expect(page.get_by_role("table", name="Aliases and catch-alls")).to_contain_text("sales@example.test")
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=30) as s:
        s.sendmail("friend@remote.invalid", ["sales@example.test"],
                   b"From: friend@remote.invalid\r\nTo: sales@example.test\r\nSubject: via-alias\r\n\r\nhello\r\n")
    deadline = time.monotonic() + 15
    while True:
        imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"], timeout=15)
        imap.login(BOB, PASSWORD)
        imap.select("INBOX", readonly=True)
        found = imap.search(None, "SUBJECT", '"via-alias"')[1][0].split()
        imap.logout()
        if found:
            break
        assert time.monotonic() < deadline, "mail to the alias did not arrive"
        time.sleep(0.2)


def test_invite_a_user_who_sets_the_password_on_the_invite_page(page: Any, daemon: TauDaemon) -> None:
    form = page.get_by_role("form", name="Add a user")
    form.get_by_label("Address").fill("dora@example.test")
    form.get_by_label("Send an invite link instead").check()
    form.get_by_role("button", name="Add user").click()
    link = page.get_by_role("textbox", name="Invite link")
    sync_api.expect(link).to_have_value(re.compile(r"/invite#token="))
    url = daemon.url + "/invite#" + link.input_value().split("#", 1)[1]  # public_url is unset: hostname-based
    stranger = page.context.browser.new_context()  # the invitee's own browser: no admin cookies
    invitee = stranger.new_page()
    invitee.goto(url)
    sync_api.expect(invitee.get_by_text("for dora@example.test")).to_be_visible()
    invitee.get_by_label("New password").fill("dora-Pa55-long")
    invitee.get_by_label("Repeat the password").fill("dora-Pa55-long")
    invitee.get_by_role("button", name="Set password").click()
    sync_api.expect(invitee.get_by_role("status")).to_contain_text("Done")
    stranger.close()
    assert imap_login(daemon, "dora@example.test", "dora-Pa55-long")


def test_revoke_an_app_password(page: Any, daemon: TauDaemon) -> None:
    out = json.loads(daemon.cli("apppassword", "add", BOB, "phone", "--json").stdout)
    assert imap_login(daemon, BOB, out["password"])
    panel = manage(page, BOB)
    panel.get_by_role("button", name="Revoke app password phone").click()
    sync_api.expect(page.get_by_role("status")).to_have_text(f"app password phone of {BOB} revoked")
    sync_api.expect(panel.get_by_role("table", name="App passwords")).not_to_contain_text("phone")
    assert not imap_login(daemon, BOB, out["password"])
    assert imap_login(daemon, BOB, PASSWORD)
