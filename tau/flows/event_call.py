"""Event → call: an event created with ``conference: true`` gets a call room.

The call is scheduled for the event's start with its attendees as participants, and its join
URL goes into the event's ``CONFERENCE`` property (RFC 7986 §5.11), which CalDAV clients show as
a join button and which travels in the iMIP invitations the calendar sends.
"""

from __future__ import annotations

from typing import Any


async def add_room(flows: Any, user: Any, fields: dict[str, Any]) -> str:
    """Replace ``conference: true`` in event fields by a new call's join URL; returns it."""
    attendees = fields.get("attendees") if isinstance(fields.get("attendees"), list) else []
    people = [a if isinstance(a, str) else str(a.get("email", "")) for a in attendees
              if isinstance(a, (str, dict))]
    participants = [p.removeprefix("mailto:") for p in people if "@" in p][:50]
    spec: dict[str, Any] = {"title": str(fields.get("summary") or "Meeting")[:200], "participants": participants}
    if isinstance(fields.get("start"), str) and "T" in fields["start"]:
        spec["scheduled_for"] = fields["start"]
    try:
        call = await flows.calls.create(user, spec)
    except Exception:  # an unparseable start or unknown attendee: still give the event a room
        call = await flows.calls.create(user, {"title": spec["title"], "participants": []})
    fields["conference"] = call["join_url"]
    return str(call["join_url"])
