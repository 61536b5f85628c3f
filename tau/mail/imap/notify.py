"""NOTIFY (RFC 5465): the NOTIFY SET / NOTIFY NONE command and what it registers.

The spec a client sets is kept on the connection; the factory routes every ``mailbox.changed``
event of the connection's own user here (``IMAPFactory.notifiers``), never another user's, and
mailbox rows are read with the user's own ``get_mailbox_by_id``. Delivery is in
``notify_push.py``. Supported events: MessageNew (with fetch attributes for the selected
mailbox), MessageExpunge, FlagChange, MailboxName, SubscriptionChange; the metadata and
annotation events are refused with ``NO [BADEVENT ...]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import fetch, notify_push
from .base import AUTHED, SYNC_FULL, Bad, No, command
from .mailboxes import status_line
from .parser import ParseError, Parser

SUPPORTED = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange")
MESSAGE_EVENTS = frozenset({"MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE", "ANNOTATIONCHANGE"})
_SUPPORTED_UPPER = frozenset(e.upper() for e in SUPPORTED)
_FILTERS = ("SELECTED", "SELECTED-DELAYED", "PERSONAL", "INBOXES", "SUBSCRIBED", "SUBTREE", "MAILBOXES")
#: bus event kind (and mailbox action) → RFC 5465 event name
EVENT_OF_KIND = {"append": "MESSAGENEW", "expunge": "MESSAGEEXPUNGE", "flags": "FLAGCHANGE"}
EVENT_OF_ACTION = {"create": "MAILBOXNAME", "delete": "MAILBOXNAME", "rename": "MAILBOXNAME",
                   "subscribe": "SUBSCRIPTIONCHANGE", "unsubscribe": "SUBSCRIPTIONCHANGE"}


@dataclass(frozen=True)
class Group:
    """One ``(filter events)`` group for mailboxes other than the selected one."""

    kind: str                      # PERSONAL, INBOXES, SUBSCRIBED, SUBTREE or MAILBOXES
    names: tuple[str, ...]
    events: frozenset[str]         # upper-case event names

    def matches(self, name: str, subscribed: set[str]) -> bool:
        if self.kind in ("PERSONAL", "INBOXES"):  # §6.3: sieve may file anywhere, so inboxes = personal
            return True
        if self.kind == "SUBSCRIBED":
            return name in subscribed
        if self.kind == "SUBTREE":
            return any(name == n or name.startswith(n + "/") for n in self.names)
        return name in self.names


@dataclass
class Spec:
    """What one connection asked for, plus the notifications waiting to be written."""

    selected: frozenset[str]        # message events for the selected mailbox (empty: none)
    delayed: bool                   # SELECTED-DELAYED: EXPUNGE only where RFC 3501 §7.4.1 allows
    fetch_atts: bytes | None        # MessageNew (fetch-att ...) for the selected mailbox
    groups: list[Group]
    subscribed: set[str] = field(default_factory=set)
    pending: dict[int, str] = field(default_factory=dict)  # mailbox id → name: STATUS to send
    lines: list[str] = field(default_factory=list)         # LIST lines to send
    selected_due: bool = False      # the selected mailbox has news to push

    def events_for(self, name: str) -> set[str]:
        out: set[str] = set()
        for g in self.groups:
            if g.matches(name, self.subscribed):
                out |= g.events
        return out


# -- parsing -------------------------------------------------------------------------------------
def _names(p: Parser) -> tuple[str, ...]:
    if p.take(b"("):
        names = [p.mailbox()]
        while p.take(b" "):
            names.append(p.mailbox())
        p.expect(b")")
        return tuple(names)
    return (p.mailbox(),)


def _fetch_atts(p: Parser) -> bytes:
    """The raw ``(fetch-att ...)`` text, validated by FETCH's own parser (no literals inside)."""
    seg, start = p.seg, p.pos
    if p.peek() != ord("("):
        raise ParseError("expected a fetch-att list")
    fetch.parse_items(p)
    if p.seg != seg:
        raise ParseError("literals are not allowed in NOTIFY fetch attributes")
    return bytes(p.line[start:p.pos])


def _events(p: Parser) -> tuple[list[str], bytes | None]:
    if not p.take(b"("):
        if p.keyword() != "NONE":
            raise ParseError("expected an event list or NONE")
        return [], None
    names: list[str] = []
    atts = None
    while True:
        name = p.atom().upper()
        names.append(name)
        if name == "MESSAGENEW" and p.peek() == ord(" "):
            save = p.pos
            p.sp()
            if p.peek() == ord("("):
                atts = _fetch_atts(p)
            else:
                p.pos = save
        if p.take(b")"):
            return names, atts
        p.sp()


def _check_events(names: list[str]) -> None:
    s = set(names)
    if ("MESSAGENEW" in s) != ("MESSAGEEXPUNGE" in s):
        raise Bad("MessageNew and MessageExpunge go together (RFC 5465 section 5)")
    if s & {"FLAGCHANGE", "ANNOTATIONCHANGE"} and "MESSAGENEW" not in s:
        raise Bad("FlagChange needs MessageNew and MessageExpunge (RFC 5465 section 5)")


def parse_set(p: Parser) -> tuple[Spec, bool]:
    """``SET [STATUS] event-groups`` after NOTIFY: (spec, status requested); Bad/ParseError on syntax."""
    status = False
    if p.peek() != ord("("):
        if p.keyword() != "STATUS":
            raise ParseError("expected STATUS or an event group")
        status = True
        p.sp()
    selected: frozenset[str] | None = None
    delayed = False
    atts: bytes | None = None
    groups: list[Group] = []
    unknown: set[str] = set()
    while True:
        p.expect(b"(")
        kind = p.atom().upper()
        if kind not in _FILTERS:
            raise ParseError(f"unknown mailbox filter {kind}")
        p.sp()
        names = _names(p) if kind in ("SUBTREE", "MAILBOXES") else ()
        if names:
            p.sp()
        events, group_atts = _events(p)
        p.expect(b")")
        _check_events(events)
        unknown |= set(events) - _SUPPORTED_UPPER
        if kind.startswith("SELECTED"):
            if selected is not None:
                raise Bad("Only one of SELECTED and SELECTED-DELAYED may be given")
            if set(events) - MESSAGE_EVENTS:
                raise Bad("Only message events apply to the selected mailbox")
            selected, delayed, atts = frozenset(events), kind == "SELECTED-DELAYED", group_atts
        else:
            if group_atts is not None:
                raise Bad("Fetch attributes apply to the selected mailbox only")
            groups.append(Group(kind, names, frozenset(events)))
        if not p.take(b" "):
            break
    p.end()
    if unknown:
        raise No("Unsupported event " + " ".join(sorted(unknown)), "BADEVENT (" + " ".join(SUPPORTED) + ")")
    return Spec(selected or frozenset(), delayed, atts, groups), status


# -- the command ---------------------------------------------------------------------------------
@command("NOTIFY", AUTHED, SYNC_FULL)
async def do_notify(conn: Any, tag: str, p: Parser) -> str:
    verb = p.keyword()
    if verb == "NONE":
        p.end()
        stop(conn)
        return "NOTIFY completed"
    if verb != "SET":
        raise Bad("Expected NOTIFY SET or NOTIFY NONE")
    p.sp()
    spec, status = parse_set(p)
    boxes = await conn.store.list_mailboxes(conn.user)
    spec.subscribed = {b.name for b in boxes if b.subscribed}
    stop(conn)
    conn.notify_spec = spec
    conn.factory.notify_watch(conn)
    if conn.selected is not None:
        conn.selected.touch()  # §3: NOTIFY SET implies a NOOP
    if status:
        sel = conn.selected.mailbox_id if conn.selected is not None else None
        items = notify_push.status_items(conn)
        conn.untagged(*(status_line(b, items, conn.utf8) for b in boxes
                        if b.id != sel and spec.events_for(b.name) & MESSAGE_EVENTS))
    return "NOTIFY completed"


def stop(conn: Any) -> None:
    """NOTIFY NONE (and the effect of an overflow, §5.8)."""
    if conn.notify_spec is not None:
        conn.notify_spec = None
        conn.factory.notify_unwatch(conn)


# -- events from the bus -------------------------------------------------------------------------
def on_event(conn: Any, event: dict[str, Any]) -> None:
    """A ``mailbox.changed`` event of this connection's user (routed by the factory)."""
    spec = conn.notify_spec
    if spec is None or event.get("user") != conn.user:
        return
    kind = str(event.get("kind", ""))
    name = str(event.get("mailbox", ""))
    if kind == "mailboxes":
        _mailbox_event(conn, spec, event, name)
    else:
        what = EVENT_OF_KIND.get(kind)
        if what is None:
            return
        sel = conn.selected
        mailbox_id = event.get("mailbox_id")
        if sel is not None and sel.mailbox_id == mailbox_id:
            if what in spec.selected:
                spec.selected_due = True
        elif isinstance(mailbox_id, int) and what in spec.events_for(name):
            spec.pending[mailbox_id] = name
        else:
            return
    if len(spec.pending) + len(spec.lines) > notify_push.MAX_PENDING:
        conn.untagged("OK [NOTIFICATIONOVERFLOW] Too many notifications; NOTIFY is off now")
        stop(conn)
        return
    notify_push.kick(conn)


_OWN = {"MAILBOXNAME": ("CREATE", "DELETE", "RENAME"), "SUBSCRIPTIONCHANGE": ("SUBSCRIBE", "UNSUBSCRIBE")}


def _mailbox_event(conn: Any, spec: Spec, event: dict[str, Any], name: str) -> None:
    action = str(event.get("action", ""))
    what = EVENT_OF_ACTION.get(action)
    if what is None:
        return
    old = str(event.get("old", ""))
    wanted = what in spec.events_for(name) or (action == "rename" and what in spec.events_for(old))
    if action == "subscribe":
        spec.subscribed.add(name)
    elif action == "unsubscribe":
        spec.subscribed.discard(name)
    elif action == "rename" and old in spec.subscribed:
        spec.subscribed.discard(old)
        spec.subscribed.add(name)
    if not wanted or conn.command_name in _OWN[what]:
        return  # §5: not for what this very session did
    spec.lines.append(notify_push.list_line(conn, action, name, old, name in spec.subscribed))
