"""Date parts for the ``date`` and ``currentdate`` tests (RFC 5260 §4.2)."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta, timezone


def header_date(value: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _zone(text: str | None) -> timezone | None:
    """``:zone "+0200"``; None keeps the date's own zone."""
    if not text or len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        return None
    minutes = int(text[1:3]) * 60 + int(text[3:])
    return timezone(timedelta(minutes=minutes if text[0] == "+" else -minutes))


def date_part(when: datetime | float, part: str, zone: str | None) -> str | None:
    if isinstance(when, (int, float)):
        when = datetime.fromtimestamp(when, UTC)
    target = _zone(zone)
    if target is not None:
        when = when.astimezone(target)
    offset = when.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    parts = {
        "year": f"{when.year:04d}", "month": f"{when.month:02d}", "day": f"{when.day:02d}",
        "date": when.strftime("%Y-%m-%d"), "hour": f"{when.hour:02d}", "minute": f"{when.minute:02d}",
        "second": f"{when.second:02d}", "time": when.strftime("%H:%M:%S"),
        "weekday": str((when.weekday() + 1) % 7), "zone": f"{sign}{minutes // 60:02d}{minutes % 60:02d}",
        "iso8601": when.isoformat(), "std11": email.utils.format_datetime(when),
        "julian": str((when.date() - datetime(1858, 11, 17).date()).days),
    }
    return parts.get(part)
