"""Issue 13 item 5 on CalDAV: a calendar share recipient's locks never lock the owner out."""

from __future__ import annotations

from typing import Any

from tests.support.calendars import ALICE, BOB, ics

INFO = ('<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>'
        "</D:locktype><D:owner>bob</D:owner></D:lockinfo>")


def _alias(cal: Any, permission: str) -> str:
    r = cal.api("PUT", f"/api/calendars/calendar/shares/{BOB}", {"permission": permission})
    assert r.status == 200, r.body
    return str(r.json()["name"])


def _lock(cal: Any, path: str, user: str) -> Any:
    return cal.dav("LOCK", path, INFO, user=user, headers={"Timeout": "Infinite"})


def test_calendar_share_locks(cal: Any) -> None:
    cal.registry.reactor.advance(2)  # tokens issued after the users' password stamps
    assert cal.put("calendar/ev.ics", ics("ev", summary="Team")).status == 201
    alias = _alias(cal, "read")
    theirs = f"/dav/calendars/{BOB}/{alias}/ev.ics"
    r = _lock(cal, theirs, BOB)
    assert r.status == 403 and b"need-privileges" in r.body  # read-only: no lock
    _alias(cal, "write")
    r = _lock(cal, theirs, BOB)
    assert r.status == 200 and b"<D:timeout>Second-3600</D:timeout>" in r.body
    token = r.header("lock-token")
    # the owner writes through it (breaking it), and may UNLOCK it
    assert cal.put("calendar/ev.ics", ics("ev", summary="Owner")).status == 204
    assert cal.put(theirs, ics("ev", summary="Bob"), user=BOB, If=f"({token})").status == 412
    token = _lock(cal, theirs, BOB).header("lock-token")
    assert cal.dav("UNLOCK", "calendar/ev.ics", headers={"Lock-Token": token}).status == 204
    # downgrading and revoking the share drop bob's locks
    assert _lock(cal, theirs, BOB).status == 200
    _alias(cal, "read")
    r = _lock(cal, "calendar/ev.ics", ALICE)
    assert r.status == 200, r.body
    assert cal.dav("UNLOCK", "calendar/ev.ics", headers={"Lock-Token": r.header("lock-token")}).status == 204
    _alias(cal, "write")
    assert _lock(cal, theirs, BOB).status == 200
    assert cal.api("DELETE", f"/api/calendars/calendar/shares/{BOB}").status == 204
    assert _lock(cal, "calendar/ev.ics", ALICE).status == 200
