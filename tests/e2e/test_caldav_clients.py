"""TauCalendar acceptance with real clients against the real daemon, on SQLite and PostgreSQL:
the ``caldav`` library (discovery from /.well-known/caldav, calendars, recurring events with an
exception, expansion, to-dos, sync tokens, delete) and ``vdirsyncer`` syncing both ways."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

caldav = pytest.importorskip("caldav")
pytestmark = pytest.mark.e2e
ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
QUIET = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}
WEEKLY = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//tests//EN
BEGIN:VEVENT
UID:standup
DTSTAMP:20240101T000000Z
DTSTART;TZID=Europe/Berlin:20240506T100000
DTEND;TZID=Europe/Berlin:20240506T101500
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=8
SUMMARY:Standup
END:VEVENT
BEGIN:VEVENT
UID:standup
DTSTAMP:20240101T000000Z
RECURRENCE-ID;TZID=Europe/Berlin:20240520T100000
DTSTART;TZID=Europe/Berlin:20240521T160000
DTEND;TZID=Europe/Berlin:20240521T161500
SUMMARY:Standup (Tuesday)
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    url = daemon_database_url(request)
    d = TauDaemon(tmp_path_factory.mktemp(f"caldav-{request.param}"), database_url=url, listeners=("http",),
                  extra=QUIET).init()
    d.add_user(ALICE, PASSWORD)
    d.start()
    yield d
    d.stop()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_caldav_library_acceptance(daemon: TauDaemon) -> None:
    client = caldav.DAVClient(url=daemon.url + "/.well-known/caldav", username=ALICE, password=PASSWORD)
    principal = client.principal()
    assert str(principal.url).endswith(f"/dav/principals/{ALICE}/")
    assert {str(c.url).rstrip("/").rsplit("/", 1)[-1] for c in principal.calendars()} >= {"calendar", "tasks"}
    work = principal.make_calendar(name="Work", cal_id="work")
    assert work.get_display_name() == "Work"
    work.save_event(WEEKLY)
    work.save_event(dtstart=utc(2024, 5, 15, 12), dtend=utc(2024, 5, 15, 13), summary="Lunch", uid="lunch")
    work.save_event(dtstart=utc(2024, 7, 1, 12), dtend=utc(2024, 7, 1, 13), summary="July", uid="july")

    found = work.search(start=utc(2024, 5, 1), end=utc(2024, 6, 1), event=True, expand=True)
    instances = sorted((c["DTSTART"].dt.astimezone(UTC), str(c["SUMMARY"]))
                       for obj in found for c in obj.icalendar_instance.walk("VEVENT"))
    assert instances == [(utc(2024, 5, 6, 8), "Standup"), (utc(2024, 5, 13, 8), "Standup"),
                         (utc(2024, 5, 15, 12), "Lunch"), (utc(2024, 5, 21, 14), "Standup (Tuesday)"),
                         (utc(2024, 5, 27, 8), "Standup")]
    unexpanded = work.search(start=utc(2024, 5, 1), end=utc(2024, 6, 1), event=True)
    assert sorted(str(o.icalendar_component["UID"]) for o in unexpanded) == ["lunch", "standup"]

    tasks = next(c for c in principal.calendars() if str(c.url).rstrip("/").endswith("tasks"))
    tasks.save_todo(summary="Buy milk", uid="milk")
    tasks.save_todo(summary="Call mum", uid="mum", due=utc(2024, 5, 20, 18))
    assert sorted(str(t.icalendar_component["SUMMARY"]) for t in tasks.todos()) == ["Buy milk", "Call mum"]

    first = work.objects_by_sync_token()
    assert len(list(first)) == 3
    work.save_event(dtstart=utc(2024, 5, 16, 12), dtend=utc(2024, 5, 16, 13), summary="Coffee", uid="coffee")
    work.event_by_uid("july").delete()
    changed = work.objects_by_sync_token(sync_token=first.sync_token, load_objects=False)
    urls = sorted(str(o.url).rsplit("/", 1)[-1] for o in changed)
    assert urls == ["coffee.ics", "july.ics"]
    assert changed.sync_token != first.sync_token
    assert list(work.objects_by_sync_token(sync_token=changed.sync_token)) == []

    work.event_by_uid("lunch").delete()
    assert sorted(str(e.icalendar_component["UID"]) for e in work.events()) == ["coffee", "standup"]
    work.delete()
    assert "work" not in {str(c.url).rstrip("/").rsplit("/", 1)[-1] for c in principal.calendars()}


@pytest.mark.skipif(shutil.which("vdirsyncer") is None, reason="vdirsyncer not installed (apt-get install vdirsyncer)")
def test_vdirsyncer_syncs_a_calendar_both_ways(daemon: TauDaemon, tmp_path: Path) -> None:
    client = caldav.DAVClient(url=daemon.url + "/dav/", username=ALICE, password=PASSWORD)
    remote = client.principal().make_calendar(name="Synced", cal_id="synced")
    remote.save_event(dtstart=utc(2024, 6, 1, 9), dtend=utc(2024, 6, 1, 10), summary="From server", uid="srv-1")
    local = tmp_path / "local"
    local.mkdir()
    config = tmp_path / "config"
    config.write_text(f"""[general]
status_path = "{tmp_path / 'status'}"

[pair cal]
a = "cal_local"
b = "cal_remote"
collections = null
conflict_resolution = "b wins"

[storage cal_local]
type = "filesystem"
path = "{local}"
fileext = ".ics"

[storage cal_remote]
type = "caldav"
url = "{daemon.url}/dav/calendars/{ALICE}/synced/"
username = "{ALICE}"
password = "{PASSWORD}"
""")

    def run(*args: str) -> str:
        out = subprocess.run(["vdirsyncer", "-c", str(config), *args], capture_output=True, timeout=120,
                             input=b"y\n")
        assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
        return out.stdout.decode() + out.stderr.decode()

    run("discover", "cal")
    run("sync", "cal")
    files = list(local.glob("*.ics"))
    assert len(files) == 1 and "From server" in files[0].read_text()
    (local / "from-local.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//local//EN\r\nBEGIN:VEVENT\r\nUID:loc-1\r\n"
        "DTSTAMP:20240101T000000Z\r\nDTSTART:20240602T090000Z\r\nDTEND:20240602T100000Z\r\n"
        "SUMMARY:From disk\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    files[0].write_text(files[0].read_text().replace("From server", "Edited on disk"))
    run("sync", "cal")
    summaries = sorted(str(e.icalendar_component["SUMMARY"]) for e in remote.events())
    assert summaries == ["Edited on disk", "From disk"]
    remote.event_by_uid("loc-1").delete()
    run("sync", "cal")
    assert sorted(p.read_text().count("BEGIN:VEVENT") for p in local.glob("*.ics")) == [1]
