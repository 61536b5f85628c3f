"""tau web's calendar, files and contacts views in headless Chromium (Playwright driving Debian's
``/usr/bin/chromium``) against one real daemon: what a DAV client stores shows in the browser,
what the browser makes a DAV client sees, share links open anonymously, and hostile names stay
text. Elements are found by role and accessible name, as a screen reader finds them. Each view is
also photographed at 1280x800 and 390x844 into tests/web/screenshots/."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import engines

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.e2e

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
CHROMIUM = "/usr/bin/chromium"
QUIET = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0", "TAU_DKIM_SIGN": "0"}
SHOTS = Path(__file__).parent / "screenshots"
#: markup that would set window.__pwned if it ever became HTML (the CSP would also refuse it:
#: the page counts its violations, which must stay at zero because nothing is even attempted)
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">'  # a file name has no "/"
WATCH = """window.__violations = 0;
document.addEventListener('securitypolicyviolation', () => { window.__violations += 1; });"""


@pytest.fixture(scope="module")
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    """One daemon for the module, on the last selected engine (PostgreSQL when the run has it: the
    REST and DAV suites cover both engines, this one covers the browser)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium)")
    url = None
    if engines()[-1] == "postgres":
        pg = request.getfixturevalue("postgres_db")
        pg.truncate_all()
        url = pg.url
    d = TauDaemon(tmp_path_factory.mktemp("webviews"), database_url=url, listeners=("http",), extra=QUIET).init()
    d.add_user(ALICE, PASSWORD)
    d.add_user(BOB, PASSWORD)
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def browser(daemon: TauDaemon) -> Iterator[Any]:
    pw = playwright_api.sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
    try:
        yield b
    finally:
        b.close()
        pw.stop()


def dav(d: TauDaemon, method: str, path: str, body: bytes | None = None, user: str = ALICE,
        headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    import base64

    auth = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    status, _, data = d.http(method, path, body, {"Authorization": f"Basic {auth}", **(headers or {})})
    return status, data


def dav_members(d: TauDaemon, collection: str) -> list[bytes]:
    """The bodies of every member of a DAV collection (PROPFIND depth 1, then GET each)."""
    status, listing = dav(d, "PROPFIND", collection, b'<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
                          headers={"Depth": "1", "Content-Type": "application/xml"})
    assert status == 207, listing
    hrefs = [h for h in re.findall(rb"<(?:D:)?href>([^<]+)</(?:D:)?href>", listing) if not h.endswith(b"/")]
    return [dav(d, "GET", h.decode())[1] for h in hrefs]


def api(d: TauDaemon, method: str, path: str, body: Any = None, user: str = ALICE) -> Any:
    data = None if body is None else json.dumps(body).encode()
    status, _, out = d.http(method, path, data, {"Content-Type": "application/json"}, token=d.token(user, PASSWORD))
    assert status < 300, out
    return json.loads(out) if out else None


def open_view(browser: Any, d: TauDaemon, view: str, width: int = 1280, height: int = 800) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height}, timezone_id="UTC",
                                  accept_downloads=True)
    context.add_init_script(WATCH)
    page = context.new_page()
    page.goto(f"{d.url}/app/views-dev.html?view={view}")
    page.get_by_label("Email").fill(ALICE)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("toolbar", name=view.capitalize()).wait_for()
    page.locator('.tv-view[aria-busy="false"]').wait_for()  # the first load is done
    return page


def assert_inert(page: Any) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.__violations") == 0


def shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.wait_for_timeout(150)  # the last render settles
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def ics(uid: str, summary: str, start: datetime, rrule: str = "") -> bytes:
    stamp = "%Y%m%dT%H%M%SZ"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", f"UID:{uid}",
             f"DTSTAMP:{start.strftime(stamp)}", f"DTSTART:{start.strftime(stamp)}",
             f"DTEND:{(start + timedelta(hours=1)).strftime(stamp)}", f"SUMMARY:{summary}"]
    lines += [f"RRULE:{rrule}"] if rrule else []
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode()


# -- calendar ----------------------------------------------------------------------------------

def test_caldav_event_shows_in_week_view_as_text(daemon: TauDaemon, browser: Any) -> None:
    monday = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    monday -= timedelta(days=monday.weekday())
    summary = f"Standup {HOSTILE}"
    status, body = dav(daemon, "PUT", f"/dav/calendars/{ALICE}/calendar/standup.ics",
                       ics("standup@test", summary, monday, "FREQ=DAILY;COUNT=3"),
                       headers={"Content-Type": "text/calendar"})
    assert status in (201, 204), body
    page = open_view(browser, daemon, "calendar")
    occurrences = page.get_by_role("button", name=re.compile("Standup <img"))
    occurrences.first.wait_for()
    assert occurrences.count() == 3  # the recurrence, expanded: Monday to Wednesday
    assert page.get_by_role("region", name=re.compile("Monday")).get_by_text(summary).count() == 1
    assert_inert(page)
    shoot(page, "calendar-week-1280")
    page.get_by_role("button", name="Month").click()
    page.get_by_role("button", name=re.compile("Week of")).first.wait_for()
    assert_inert(page)
    shoot(page, "calendar-month-1280")
    page.context.close()
    phone = open_view(browser, daemon, "calendar", 390, 844)
    phone.get_by_role("button", name=re.compile("Standup <img")).first.wait_for()
    shoot(phone, "calendar-week-390")
    phone.context.close()


def test_event_made_in_browser_is_seen_over_caldav(daemon: TauDaemon, browser: Any) -> None:
    page = open_view(browser, daemon, "calendar")
    page.get_by_role("button", name="New event", exact=True).click()
    dialog = page.get_by_role("dialog", name="New event")
    dialog.get_by_label("Title").fill("Budget review")
    dialog.get_by_label("Location").fill("Room 4")
    dialog.get_by_label("Repeat").select_option("WEEKLY")
    dialog.get_by_label("Number of times (empty: forever)").fill("4")
    dialog.get_by_label("Add video call").check()
    dialog.get_by_role("button", name="Create").click()
    playwright_api.expect(page.get_by_role("status")).to_have_text("Event created")  # or the server's complaint
    page.get_by_role("button", name=re.compile("Budget review")).first.wait_for()
    cards = [b for b in dav_members(daemon, f"/dav/calendars/{ALICE}/calendar/") if b"Budget review" in b]
    assert len(cards) == 1
    text = cards[0].replace(b"\r\n ", b"").decode()
    assert "LOCATION:Room 4" in text and "RRULE:FREQ=WEEKLY;COUNT=4" in text
    assert "CONFERENCE" in text  # "add video call": the server made a call room and linked it
    page.get_by_role("button", name=re.compile("Budget review")).first.click()
    dialog = page.get_by_role("dialog", name="Edit event")
    dialog.get_by_label("Repeat").select_option("DAILY")
    dialog.get_by_label("Number of times (empty: forever)").fill("2")
    dialog.get_by_role("button", name="Save").click()
    page.get_by_role("status").filter(has_text="Saved").wait_for()
    text = next(b for b in dav_members(daemon, f"/dav/calendars/{ALICE}/calendar/") if b"Budget review" in b).decode()
    assert "RRULE:FREQ=DAILY;COUNT=2" in text and "LOCATION:Room 4" in text
    page.get_by_role("button", name=re.compile("Budget review")).first.click()
    page.get_by_role("dialog", name="Edit event").get_by_role("button", name="Delete").click()
    page.get_by_role("dialog", name="Delete?").get_by_role("button", name="Delete").click()
    page.get_by_role("status").filter(has_text="Deleted").wait_for()
    assert not [b for b in dav_members(daemon, f"/dav/calendars/{ALICE}/calendar/") if b"Budget review" in b]
    page.context.close()


def test_invitation_accepted_in_browser_replies_to_organizer(daemon: TauDaemon, browser: Any) -> None:
    start = datetime.now(UTC).replace(hour=22, minute=0, second=0, microsecond=0)  # this week, in the view
    made = api(daemon, "POST", "/api/events", {"summary": "Planning", "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                               "end": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                               "attendees": [ALICE]}, user=BOB)
    page = open_view(browser, daemon, "calendar")
    invitations = page.get_by_role("region", name="Invitations")
    invitations.get_by_role("button", name="Accept Planning").click()
    page.get_by_role("status").filter(has_text="Accepted").wait_for()
    assert invitations.is_hidden()
    organizer_copy = api(daemon, "GET", f"/api/events/{made['id']}", user=BOB)
    assert {"address": ALICE, "partstat": "ACCEPTED"} in organizer_copy["attendees"]
    page.context.close()


def test_task_made_and_done_in_browser_is_a_completed_vtodo_over_caldav(daemon: TauDaemon, browser: Any) -> None:
    page = open_view(browser, daemon, "calendar")
    page.get_by_role("button", name="New task").click()
    dialog = page.get_by_role("dialog", name="New task")
    dialog.get_by_label("Title").fill("Pay rent")
    dialog.get_by_label("Due").fill("2030-01-31T18:00")
    dialog.get_by_role("button", name="Create").click()
    page.get_by_role("checkbox", name="Done: Pay rent").check()
    page.get_by_role("status").filter(has_text="Task done").wait_for()
    todo = [b.decode() for b in dav_members(daemon, f"/dav/calendars/{ALICE}/tasks/") if b"Pay rent" in b]
    assert len(todo) == 1 and "BEGIN:VTODO" in todo[0] and "STATUS:COMPLETED" in todo[0]
    assert "DUE;TZID=UTC:20300131T180000" in todo[0] or "DUE:20300131T180000Z" in todo[0]
    page.context.close()


# -- files -------------------------------------------------------------------------------------

def test_webdav_file_listed_and_downloaded_in_browser(daemon: TauDaemon, browser: Any, tmp_path: Path) -> None:
    name = f"{HOSTILE_NAME}.txt"
    status, _ = dav(daemon, "PUT", f"/dav/files/{ALICE}/{quote(name)}", b"from webdav\n")
    assert status == 201
    dav(daemon, "MKCOL", f"/dav/files/{ALICE}/Projects")
    page = open_view(browser, daemon, "files")
    row = page.get_by_role("row").filter(has_text=name)
    row.wait_for()
    with page.expect_download() as download:
        row.get_by_role("button", name=f"Download {name}").first.click()
    saved = tmp_path / "got.txt"
    download.value.save_as(saved)
    assert saved.read_bytes() == b"from webdav\n"
    assert_inert(page)
    page.context.close()


def test_browser_upload_is_seen_over_webdav_and_shared_anonymously(daemon: TauDaemon, browser: Any,
                                                                    tmp_path: Path) -> None:
    payload = uuid.uuid4().bytes * 80_000  # 1.25 MB: the progress bar has something to show
    source = tmp_path / "report.bin"
    source.write_bytes(payload)
    page = open_view(browser, daemon, "files")
    page.get_by_label("Upload files").set_input_files(str(source))
    page.get_by_role("status").filter(has_text="Uploaded report.bin").wait_for()
    status, body = dav(daemon, "GET", f"/dav/files/{ALICE}/report.bin")
    assert status == 200 and body == payload
    page.get_by_role("button", name="Share report.bin").click()
    dialog = page.get_by_role("dialog", name="Share report.bin")
    dialog.get_by_role("button", name="Create link").click()
    link = page.get_by_role("dialog", name="Share link").get_by_label("Share link").input_value()
    assert re.fullmatch(rf"{re.escape(daemon.url)}/s/[A-Za-z0-9_-]+", link), link
    with urllib.request.urlopen(link, timeout=10) as anonymous:  # no credentials at all
        assert anonymous.read() == payload
    page.get_by_role("dialog", name="Share link").get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Revoke link to /report.bin").wait_for()
    shoot(page, "files-1280")
    page.context.close()
    phone = open_view(browser, daemon, "files", 390, 844)
    phone.get_by_role("button", name="Download report.bin").first.wait_for()
    shoot(phone, "files-390")
    phone.context.close()


def test_rename_move_and_delete_in_browser(daemon: TauDaemon, browser: Any) -> None:
    dav(daemon, "PUT", f"/dav/files/{ALICE}/draft.txt", b"draft")
    dav(daemon, "MKCOL", f"/dav/files/{ALICE}/Archive")
    page = open_view(browser, daemon, "files")
    page.get_by_role("button", name="Rename draft.txt").click()
    page.get_by_role("dialog").get_by_label("New name").fill("final.txt")
    page.get_by_role("dialog").get_by_role("button", name="Save").click()
    page.get_by_role("button", name="Move final.txt").click()
    page.get_by_role("dialog").get_by_label("Destination folder").fill("/Archive")
    page.get_by_role("dialog").get_by_role("button", name="Move").click()
    page.get_by_role("status").filter(has_text="Moved final.txt").wait_for()
    assert dav(daemon, "GET", f"/dav/files/{ALICE}/Archive/final.txt") == (200, b"draft")
    page.get_by_role("button", name="Archive", exact=True).click()
    page.get_by_role("button", name="Delete final.txt").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_role("status").filter(has_text="Deleted final.txt").wait_for()
    assert dav(daemon, "GET", f"/dav/files/{ALICE}/Archive/final.txt")[0] == 404
    page.context.close()


# -- contacts ----------------------------------------------------------------------------------

def test_carddav_contact_listed_and_browser_contact_seen_over_carddav(daemon: TauDaemon, browser: Any) -> None:
    card = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ada@test\r\nFN:Ada " + HOSTILE + "\r\nN:Ada;;;;\r\n"
            "EMAIL;TYPE=INTERNET:ada@example.test\r\nEND:VCARD\r\n").encode()
    status, body = dav(daemon, "PUT", f"/dav/addressbooks/{ALICE}/contacts/ada.vcf", card,
                       headers={"Content-Type": "text/vcard"})
    assert status == 201, body
    page = open_view(browser, daemon, "contacts")
    page.get_by_role("button", name=re.compile("Ada <img")).click()
    page.get_by_role("region", name="Contact details").get_by_text("ada@example.test").wait_for()
    assert_inert(page)
    page.get_by_role("button", name="New contact").click()
    dialog = page.get_by_role("dialog", name="New contact")
    dialog.get_by_label("Name").fill("Grace Hopper")
    dialog.get_by_label("Email addresses (one per line)").fill("grace@example.test")
    dialog.get_by_label("Organization").fill("Navy")
    dialog.get_by_role("button", name="Create").click()
    page.get_by_role("status").filter(has_text="Created Grace Hopper").wait_for()
    cards = [c.decode() for c in dav_members(daemon, f"/dav/addressbooks/{ALICE}/contacts/")]
    assert any("FN:Grace Hopper" in c and "grace@example.test" in c and "ORG:Navy" in c for c in cards)
    page.get_by_role("searchbox", name="Search contacts").fill("grace")
    page.get_by_role("status").filter(has_text="1 found").wait_for()
    assert page.get_by_role("button", name=re.compile("Ada")).count() == 0
    page.get_by_role("searchbox", name="Search contacts").fill("")
    page.get_by_role("button", name=re.compile("Ada <img")).wait_for()
    assert_inert(page)
    shoot(page, "contacts-1280")
    page.get_by_role("button", name="Edit Grace Hopper").click()
    page.get_by_role("dialog", name="Edit Grace Hopper").get_by_label("Organization").fill("Navy Reserve")
    page.get_by_role("dialog", name="Edit Grace Hopper").get_by_role("button", name="Save").click()
    page.get_by_role("status").filter(has_text="Saved").wait_for()
    page.get_by_role("button", name=re.compile("Ada <img")).click()
    page.get_by_role("region", name="Contact details").get_by_role("button", name=re.compile("Delete")).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_role("status").filter(has_text="Deleted").wait_for()
    cards = [c.decode() for c in dav_members(daemon, f"/dav/addressbooks/{ALICE}/contacts/")]
    assert len(cards) == 1 and "ORG:Navy Reserve" in cards[0]
    assert_inert(page)
    page.context.close()
    phone = open_view(browser, daemon, "contacts", 390, 844)
    phone.get_by_role("button", name=re.compile("Grace Hopper")).click()  # the list, then its details
    phone.get_by_role("region", name="Contact details").wait_for()
    shoot(phone, "contacts-390")
    phone.context.close()


def test_static_files_carry_the_strict_csp(daemon: TauDaemon) -> None:
    """The pages carry the strict policy (a policy on a script or stylesheet would do nothing);
    modules and stylesheets are served as exactly what they are, never sniffed into a page."""
    status, headers, _ = daemon.http("GET", "/app/views-dev.html")
    assert status == 200
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    for path, kind in (("/app/views/calendar.js", "text/javascript"), ("/app/views/views.css", "text/css")):
        status, headers, _ = daemon.http("GET", path)
        assert status == 200 and headers["content-type"].startswith(kind)
        assert headers["x-content-type-options"] == "nosniff"
    assert daemon.http("GET", "/app/../tau.ini")[0] == 404


