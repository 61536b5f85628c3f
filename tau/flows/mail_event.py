"""Mail → event: ``POST /api/emails/{id}/event`` turns any email into an event in the caller's calendar.

Summary from the subject, description from the text body; ``start``/``end`` and any other event
field may be given in the request (default: the next whole hour, one hour long). Incoming
text/calendar parts (iMIP) are already applied automatically by ``tau.calendar.imip`` when the
message lands in an INBOX; this endpoint is for the mail that is not an invitation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tau.flows.common import Mail, refuse
from tau.http.errors import HttpError

FIELDS = ("summary", "start", "end", "location", "description", "calendar", "conference", "rrule")


def _text(mail: Mail) -> str:
    part = mail.msg.get_body(("plain",))
    try:
        return str(part.get_content())[:4000] if part is not None else ""
    except (LookupError, UnicodeError, ValueError):
        return ""


async def make_event(flows: Any, user: Any, mail: Mail, body: dict[str, Any]) -> dict[str, Any]:
    from tau.calendar.domain import Owner
    from tau.calendar.events import FieldError
    from tau.calendar.ical import InvalidObject
    from tau.calendar.store import CalendarError

    cals = flows.calendars
    if cals is None:
        raise HttpError(503, "calendar_unavailable", "the calendar service is not enabled")
    start = datetime.fromtimestamp(cals.now(), UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    fields: dict[str, Any] = {"summary": mail.subject or "(no subject)", "description": _text(mail),
                              "start": start.isoformat().replace("+00:00", "Z"),
                              "end": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z")}
    fields.update({k: v for k, v in body.items() if k in FIELDS})
    calendar = fields.pop("calendar", None)
    if fields.get("conference") is True:
        await flows.conference(user, fields)
    try:
        cal, row = await cals.create_event(Owner(user.id, user.address.lower()), fields, calendar)
    except (FieldError, InvalidObject, CalendarError) as exc:
        raise refuse(exc)
    return {"id": row.id, "uid": row.uid, "calendar": cal.name, "summary": fields["summary"],
            "start": fields["start"], "end": fields["end"], "conference": fields.get("conference")}
