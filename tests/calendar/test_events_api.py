"""REST /api/events (INTERFACE.md): the same events CalDAV serves, recurring ones expanded."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.calendars import ALICE, BOB, ics
from tests.support.http import assert_json_error

JUNE = "from=2024-06-01T00:00:00Z&to=2024-07-01T00:00:00Z"


def test_create_list_patch_delete_and_the_same_data_over_caldav(cal: Any) -> None:
    r = cal.api("POST", "/api/events", {"summary": "Yoga", "start": "2024-06-03T07:00:00+02:00",
                                        "end": "2024-06-03T08:00:00+02:00", "rrule": "FREQ=WEEKLY;COUNT=3",
                                        "location": "Gym", "conference": "https://meet.example.test/r/1"})
    assert r.status == 201, r.body
    event = r.json()
    assert {"id", "summary", "start", "end", "calendar", "url"} <= set(event)
    assert event["calendar"] == "calendar" and event["start"] == "2024-06-03T05:00:00Z"
    dav = cal.dav("GET", event["url"])
    assert dav.status == 200 and b"RRULE:FREQ=WEEKLY;COUNT=3" in dav.body and b"CONFERENCE" in dav.body
    items = cal.api("GET", f"/api/events?{JUNE}").json()
    assert [i["start"] for i in items["items"]] == ["2024-06-03T05:00:00Z", "2024-06-10T05:00:00Z",
                                                    "2024-06-17T05:00:00Z"]
    assert all(i["id"] == event["id"] and i["recurrence_id"] and i["location"] == "Gym" for i in items["items"])
    page = cal.api("GET", f"/api/events?{JUNE}&limit=2").json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = cal.api("GET", f"/api/events?{JUNE}&limit=2&cursor={page['next_cursor']}").json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    r = cal.api("PATCH", f"/api/events/{event['id']}", {"summary": "Pilates", "rrule": None})
    assert r.status == 200 and r.json()["summary"] == "Pilates"
    assert [i["summary"] for i in cal.api("GET", f"/api/events?{JUNE}").json()["items"]] == ["Pilates"]
    assert cal.api("DELETE", f"/api/events/{event['id']}").status == 204
    assert cal.api("GET", f"/api/events/{event['id']}").status == 404
    assert cal.dav("GET", event["url"]).status == 404


def test_events_put_over_caldav_are_listed_and_all_day_events_are_dates(cal: Any) -> None:
    assert cal.put("calendar/x.ics", ics("x", start="20240605T100000Z", end="20240605T110000Z",
                                         summary="From a client")).status == 201
    r = cal.api("POST", "/api/events", {"summary": "Holiday", "start": "2024-06-07", "end": "2024-06-08"})
    assert r.status == 201
    items = cal.api("GET", f"/api/events?{JUNE}").json()["items"]
    assert [(i["summary"], i["start"]) for i in items] == [("From a client", "2024-06-05T10:00:00Z"),
                                                           ("Holiday", "2024-06-07")]
    assert cal.api("GET", f"/api/events?{JUNE}&calendar=nope").status == 404
    assert cal.api("GET", f"/api/events?{JUNE}&calendar=calendar").json()["items"] == items


def test_todos(cal: Any) -> None:
    r = cal.api("POST", "/api/events", {"type": "todo", "summary": "Pay rent", "end": "2024-06-30T18:00:00Z"})
    assert r.status == 201 and r.json()["calendar"] == "tasks"
    assert cal.api("POST", "/api/events", {"type": "todo", "summary": "Someday"}).status == 201
    items = cal.api("GET", "/api/events?type=todo").json()["items"]
    assert sorted(i["summary"] for i in items) == ["Pay rent", "Someday"]
    todo = next(i for i in items if i["summary"] == "Pay rent")
    assert todo["due"] == "2024-06-30T18:00:00Z" and todo["completed"] is False
    r = cal.api("PATCH", f"/api/events/{todo['id']}", {"completed": True})
    assert r.status == 200 and r.json()["completed"] is True
    assert cal.api("GET", f"/api/events?{JUNE}").json()["items"] == []  # events only by default


@pytest.mark.parametrize("body,field", [
    ({}, "summary"), ({"summary": "x"}, "start"), ({"summary": "x", "start": "tomorrow"}, "start"),
    ({"summary": "x", "start": "2024-06-01T10:00:00Z", "end": "2024-06-01T09:00:00Z"}, "end"),
    ({"summary": "x", "start": "2024-06-01T10:00:00"}, "start"),
    ({"summary": "x", "start": "2024-06-01T10:00:00", "timezone": "Mars/Olympus"}, "timezone"),
    ({"summary": "x", "start": "2024-06-01T10:00:00Z", "rrule": "FREQ=NEVER"}, "rrule"),
    ({"summary": 5, "start": "2024-06-01T10:00:00Z"}, "summary"),
    ({"summary": "x", "start": "2024-06-01T10:00:00Z", "attendees": ["not an address"]}, "attendees"),
    ({"summary": "x", "start": "2024-06-01T10:00:00Z", "type": "meeting"}, "type"),
])
def test_invalid_events_are_400_with_the_field(cal: Any, body: dict[str, Any], field: str) -> None:
    r = cal.api("POST", "/api/events", body)
    err = assert_json_error(r, 400, "invalid_event")
    assert err["field"] == field


def test_local_times_with_a_timezone_and_the_auth_contract(cal: Any) -> None:
    r = cal.api("POST", "/api/events", {"summary": "Local", "start": "2024-06-03T09:00:00",
                                        "end": "2024-06-03T10:00:00", "timezone": "America/New_York",
                                        "rrule": "FREQ=DAILY;COUNT=2"})
    assert r.status == 201
    assert b"TZID=America/New_York" in cal.dav("GET", r.json()["url"]).body
    items = cal.api("GET", f"/api/events?{JUNE}").json()["items"]
    assert [i["start"] for i in items] == ["2024-06-03T13:00:00Z", "2024-06-04T13:00:00Z"]
    assert_json_error(cal.client.request("GET", "/api/events"), 401)
    assert_json_error(cal.api("POST", "/api/events", {"summary": "x", "start": "2024-06-01T10:00:00Z",
                                                      "calendar": "nope"}), 404, "calendar_not_found")
    assert cal.api("GET", "/api/calendars").json()["items"][0]["owner"] == ALICE


def test_conference_true_asks_the_registered_room_maker(cal: Any) -> None:
    asked: list[tuple[str, str]] = []

    async def make_room(user: str, fields: dict[str, Any]) -> str:
        asked.append((user, fields["summary"]))
        return "https://tau.example.test/call/room-1"

    cal.registry.provide("calendar_conference", make_room)
    r = cal.api("POST", "/api/events", {"summary": "Sync", "start": "2024-06-03T09:00:00Z", "conference": True})
    assert r.status == 201 and r.json()["conference"] == "https://tau.example.test/call/room-1"
    assert asked == [(ALICE, "Sync")]
    text = cal.dav("GET", r.json()["url"]).body.decode().replace("\r\n ", "")
    assert "CONFERENCE;FEATURE=AUDIO,VIDEO;VALUE=URI:https://tau.example.test/call/room-1" in text


def test_an_invitation_is_listed_with_attendees_and_answered_by_patch(cal: Any) -> None:
    made = cal.api("POST", "/api/events", {"summary": "Review", "start": "2024-06-04T09:00:00Z",
                                           "end": "2024-06-04T10:00:00Z", "attendees": [ALICE]}, user=BOB).json()
    invite = cal.api("GET", f"/api/events?{JUNE}").json()["items"][0]
    assert invite["summary"] == "Review" and invite["organizer"] == BOB
    assert {"address": ALICE, "partstat": "NEEDS-ACTION"} in invite["attendees"]
    assert_json_error(cal.api("PATCH", f"/api/events/{invite['id']}", {"partstat": "MAYBE"}), 400, "invalid_event")
    r = cal.api("PATCH", f"/api/events/{invite['id']}", {"partstat": "declined"})
    assert r.status == 200 and {"address": ALICE, "partstat": "DECLINED"} in r.json()["attendees"]
    organizer_copy = cal.api("GET", f"/api/events/{made['id']}", user=BOB).json()
    assert {"address": ALICE, "partstat": "DECLINED"} in organizer_copy["attendees"]  # the iTIP REPLY arrived
    own = cal.api("POST", "/api/events", {"summary": "Solo", "start": "2024-06-05T09:00:00Z"}).json()
    assert_json_error(cal.api("PATCH", f"/api/events/{own['id']}", {"partstat": "ACCEPTED"}), 400, "invalid_event")
