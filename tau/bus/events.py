"""The bus topics, named once, with the payload each carries.

Why plain strings and dicts rather than event classes: every payload must survive a JSON round
trip through Redis unchanged, so what a subscriber on another node receives is exactly what a
local subscriber receives. Every publisher and subscriber names its topic with these constants
(``tests/test_bus_topics.py`` refuses a literal), so this list is the whole traffic of the bus.
"""

from __future__ import annotations

from typing import Any

#: any change of a mailbox (published by the mail store after commit; IMAP IDLE and iMIP listen):
#: ``{"user", "mailbox_id", "mailbox", "kind", "uids", "modseq", ...}``
MAILBOX_CHANGED = "mailbox.changed"
#: a chat message was stored: ``{"message": {...}, "deliveries": [[user, device, envelope], ...]}``
MESSAGE_CREATED = "message.created"
#: read/delivered receipts: ``{"kind", "conversation", "user", "ids", "audience": [user, ...]}``
MESSAGE_RECEIPT = "message.receipt"
#: ``{"conversation", "user", "state", "audience": [user, ...]}``
MESSAGE_TYPING = "message.typing"
#: a conversation was created or changed: ``{"conversation": {...}, "audience": [user, ...]}``
MESSAGE_CONVERSATION = "message.conversation"
#: ``{"user", "status", "last_seen", "audience": [user, ...]}``
PRESENCE_CHANGED = "presence.changed"
#: a device is running out of one-time prekeys: ``{"user", "device_id", "remaining"}``
KEYS_LOW = "keys.low"
#: a signaling frame for one participant, a room or some users (see ``tau.connect.hub``)
SIGNAL_FRAME = "signal.frame"
#: ``{"kind", "call": {...}, "audience": [user, ...]}``
CALL_UPDATED = "call.updated"
#: ``{"user", "calendar", "uid", "kind"}``
CALENDAR_CHANGED = "calendar.changed"
#: an address book member changed: ``{"user", "addressbook", "name", "kind"}``
CONTACTS_CHANGED = "contacts.changed"
#: a user sent mail (submission or ``POST /api/emails``): ``{"user", "recipients": [address, ...]}``
MAIL_SUBMITTED = "mail.submitted"
#: token families revoked on some node: ``{"families": {family: revoked_at, ...}}``
AUTH_REVOKED = "auth.revoked"

ALL = (MAILBOX_CHANGED, MESSAGE_CREATED, MESSAGE_RECEIPT, MESSAGE_TYPING, MESSAGE_CONVERSATION,
       PRESENCE_CHANGED, KEYS_LOW, SIGNAL_FRAME, CALL_UPDATED, CALENDAR_CHANGED, AUTH_REVOKED,
       CONTACTS_CHANGED, MAIL_SUBMITTED)


def family(topic: str) -> str:
    """The ``prefix.*`` pattern that also receives ``topic``."""
    return topic.split(".", 1)[0] + ".*"


def calendar_changed(user: str, calendar: str, uid: str, kind: str) -> dict[str, Any]:
    return {"user": user, "calendar": calendar, "uid": uid, "kind": kind}


def publish(bus: Any, topic: str, event: dict[str, Any]) -> None:
    """Publish ``event``; refuses unknown topics so a typo is an error, not a silent no-op."""
    if topic not in ALL:
        raise ValueError(f"unknown bus topic {topic!r}")
    bus.publish(topic, event)
