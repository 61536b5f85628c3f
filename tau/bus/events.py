"""The bus topics, named once, with the payload each carries.

Why plain strings and dicts rather than event classes: every payload must survive a JSON round
trip through Redis unchanged, so what a subscriber on another node receives is exactly what a
local subscriber receives. These constants and helpers give publishers one spelling per topic and
document the shape; existing modules that publish the literal string are equivalent.
"""

from __future__ import annotations

from typing import Any

#: a message was committed to a user's mailbox by SMTP/LMTP/API delivery:
#: ``{"user", "mailbox", "message_id", "from", "subject"}``
MAIL_DELIVERED = "mail.delivered"
#: any change of a mailbox (published by the mail store after commit; IMAP IDLE listens):
#: ``{"user", "mailbox_id", "mailbox", "kind", "uids", "modseq", ...}``
MAILBOX_CHANGED = "mailbox.changed"
#: a chat message was stored: ``{"message": {...}, "deliveries": [[user, device, envelope], ...]}``
MESSAGE_CREATED = "message.created"
#: ``{"user", "status", "last_seen", "audience": [user, ...]}``
PRESENCE_CHANGED = "presence.changed"
#: a signaling frame for one participant, a room or some users (see ``tau.connect.hub``)
SIGNAL_FRAME = "signal.frame"
#: ``{"user", "calendar", "uid", "kind"}``
CALENDAR_CHANGED = "calendar.changed"
#: ``{"user", "path", "kind"}``
FILE_CHANGED = "file.changed"
#: ``{"kind", "call": {...}, "audience": [user, ...]}``
CALL_UPDATED = "call.updated"

ALL = (MAIL_DELIVERED, MAILBOX_CHANGED, MESSAGE_CREATED, PRESENCE_CHANGED, SIGNAL_FRAME,
       CALENDAR_CHANGED, FILE_CHANGED, CALL_UPDATED)


def family(topic: str) -> str:
    """The ``prefix.*`` pattern that also receives ``topic``."""
    return topic.split(".", 1)[0] + ".*"


def mail_delivered(user: str, mailbox: str, message_id: int, sender: str = "", subject: str = "") -> dict[str, Any]:
    return {"user": user, "mailbox": mailbox, "message_id": message_id, "from": sender, "subject": subject}


def calendar_changed(user: str, calendar: str, uid: str, kind: str) -> dict[str, Any]:
    return {"user": user, "calendar": calendar, "uid": uid, "kind": kind}


def file_changed(user: str, path: str, kind: str) -> dict[str, Any]:
    return {"user": user, "path": path, "kind": kind}


def publish(bus: Any, topic: str, event: dict[str, Any]) -> None:
    """Publish ``event``; refuses unknown topics so a typo is an error, not a silent no-op."""
    if topic not in ALL and not topic.startswith(("message.", "keys.")):
        raise ValueError(f"unknown bus topic {topic!r}")
    bus.publish(topic, event)
