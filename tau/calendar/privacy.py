"""The user's calendars in a privacy export (one ``.ics`` per calendar); erasure is the account's
``ON DELETE CASCADE``. See :mod:`tau.privacy`."""

from __future__ import annotations

from tau.calendar import privacy_store as rows
from tau.privacy import ExportContext, PrivacyHook, safe_name


def merge_ics(objects: list[str]) -> str:
    """One VCALENDAR with the components (and time zones, once) of every stored object."""
    body: list[str] = []
    zones: dict[str, str] = {}
    for data in objects:
        lines = data.replace("\r\n", "\n").split("\n")
        inner, depth, block, tzid = [], 0, [], None
        for line in lines:
            if line.startswith("BEGIN:") and line != "BEGIN:VCALENDAR":
                depth += 1
            if depth:
                block.append(line)
                if depth == 1 and line.startswith("TZID:") and block[0] == "BEGIN:VTIMEZONE":
                    tzid = line
            if line.startswith("END:") and line != "END:VCALENDAR":
                depth -= 1
                if depth == 0:
                    if block[0] == "BEGIN:VTIMEZONE":
                        zones.setdefault(tzid or str(len(zones)), "\r\n".join(block))
                    else:
                        inner.append("\r\n".join(block))
                    block, tzid = [], None
        body.extend(inner)
    parts = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tau//export//EN", *zones.values(), *body, "END:VCALENDAR"]
    return "\r\n".join(parts) + "\r\n"


def export(ctx: ExportContext) -> None:
    ctx.counts.update(calendars=0, events=0)
    for cal_id, name in ctx.db.run("cals", rows.calendars, ctx.user.id, readonly=True):
        objects = ctx.db.run("objs", rows.objects, cal_id, readonly=True)
        ctx.add_bytes(f"calendars/{safe_name(name)}.ics", merge_ics(objects).encode())
        ctx.counts["calendars"] += 1
        ctx.counts["events"] += len(objects)


HOOK = PrivacyHook("calendar", export=export)
