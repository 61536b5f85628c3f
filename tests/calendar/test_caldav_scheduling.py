"""Scheduling (RFC 6638) and iMIP (RFC 6047) in process: organizer and attendee flows, local
delivery, remote invitations queued for TauMail, and iMIP messages arriving in an INBOX."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import pytest

from tau.mail.store import queue
from tests.support.calendars import ALICE, BOB, ics
from tests.support.harness import resolve

CAROL = "carol@remote.test"
INVITE = (f"ORGANIZER;CN=Alice:mailto:{ALICE}\nATTENDEE;PARTSTAT=ACCEPTED:mailto:{ALICE}\n"
          f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{BOB}\n"
          f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{CAROL}")


def mail_store(cal: Any) -> Any:
    return cal.registry.mail_store


def inbox_messages(cal: Any, user: str) -> list[bytes]:
    store = mail_store(cal)
    box = resolve(store.get_mailbox(user, "INBOX"))
    metas = resolve(store.fetch(box.id, resolve(store.uids(box.id))))
    return [resolve(store.read(m.blob_key)) for m in metas]


def queued(cal: Any) -> list[tuple[Any, bytes]]:
    rows = cal.registry.db.sync.run("q", queue.list_queue)
    return [(row, resolve(cal.registry.blobs.read(row.blob_key))) for row in rows]


def deliver(cal: Any, user: str, raw: bytes) -> None:
    resolve(mail_store(cal).deliver([user], raw, None, len(raw), None))


def reply_mail(sender: str, uid: str, partstat: str, attendee: str | None = None, message_id: str = "<r1@x>") -> bytes:
    attendee = attendee or sender
    body = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//remote//EN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20240102T000000Z\r\nORGANIZER:mailto:{ALICE}\r\n"
            f"ATTENDEE;PARTSTAT={partstat}:mailto:{attendee}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    return (f"From: Someone <{sender}>\r\nTo: {ALICE}\r\nSubject: Accepted\r\nMessage-ID: {message_id}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
            "Content-Type: text/plain\r\n\r\nAccepted.\r\n--b\r\nContent-Type: text/calendar; method=REPLY; "
            f"charset=utf-8\r\n\r\n{body}--b--\r\n").encode()


def attendee_line(text: str, who: str) -> str:
    unfolded = text.replace("\r\n ", "")
    return next(line for line in unfolded.splitlines() if line.startswith("ATTENDEE") and who in line)


def test_organizer_invites_local_and_remote_attendees(cal: Any) -> None:
    assert cal.put("calendar/inv.ics", ics("inv-1", summary="Planning", extra=INVITE)).status == 201
    copy = cal.dav("GET", f"/dav/calendars/{BOB}/calendar/inv-1.ics", user=BOB)
    assert copy.status == 200 and "PARTSTAT=NEEDS-ACTION" in attendee_line(copy.body.decode(), BOB)
    inbox = cal.dav("PROPFIND", f"/dav/calendars/{BOB}/inbox/", "", user=BOB, headers={"Depth": "1"})
    assert inbox.body.count(b"<D:response>") == 2  # the inbox and one scheduling message
    mails = inbox_messages(cal, BOB)
    assert len(mails) == 1 and b"METHOD:REQUEST" in mails[0] and b"text/calendar" in mails[0]
    (row, raw), = queued(cal)
    assert row.rcpt_to == (CAROL,) and row.mail_from == ALICE
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "REQUEST" and "UID:inv-1" in part.get_content()
    assert msg["Subject"] == "Invitation: Planning"
    # saving again without a significant change sends nothing new
    assert cal.put("calendar/inv.ics", ics("inv-1", summary="Planning", extra=INVITE)).status == 204
    assert len(queued(cal)) == 1 and len(inbox_messages(cal, BOB)) == 1


def test_local_attendee_reply_and_remote_imip_reply_update_the_organizer(cal: Any) -> None:
    assert cal.put("calendar/inv.ics", ics("inv-2", summary="Review", extra=INVITE)).status == 201
    path = f"/dav/calendars/{BOB}/calendar/inv-2.ics"
    text = cal.dav("GET", path, user=BOB).body.decode().replace("\r\n ", "")
    accepted = text.replace(attendee_line(text, BOB), f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{BOB}")
    assert cal.put(path, accepted, user=BOB).status == 204
    mine = cal.dav("GET", "calendar/inv.ics").body.decode()
    assert "PARTSTAT=ACCEPTED" in attendee_line(mine, BOB)
    deliver(cal, ALICE, reply_mail("mallory@evil.test", "inv-2", "DECLINED", attendee=CAROL, message_id="<f@x>"))
    assert "NEEDS-ACTION" in attendee_line(cal.dav("GET", "calendar/inv.ics").body.decode(), CAROL)
    deliver(cal, ALICE, reply_mail(CAROL, "inv-2", "ACCEPTED"))
    mine = cal.dav("GET", "calendar/inv.ics").body.decode()
    assert "PARTSTAT=ACCEPTED" in attendee_line(mine, CAROL)
    # the same message appended again (an IMAP copy) is not applied twice
    assert cal.put("calendar/inv.ics", mine.replace("PARTSTAT=ACCEPTED;SCHEDULE-STATUS=2.0:mailto:carol",
                                                    "PARTSTAT=TENTATIVE:mailto:carol")).status == 204
    deliver(cal, ALICE, reply_mail(CAROL, "inv-2", "ACCEPTED"))
    assert "TENTATIVE" in attendee_line(cal.dav("GET", "calendar/inv.ics").body.decode(), CAROL)


def test_deleting_the_event_cancels_it_for_everyone(cal: Any) -> None:
    assert cal.put("calendar/inv.ics", ics("inv-3", summary="Offsite", extra=INVITE)).status == 201
    assert cal.dav("DELETE", "calendar/inv.ics").status == 204
    copy = cal.dav("GET", f"/dav/calendars/{BOB}/calendar/inv-3.ics", user=BOB).body
    assert b"STATUS:CANCELLED" in copy
    sent = [raw for _, raw in queued(cal)]
    assert len(sent) == 2 and b"METHOD:REQUEST" in sent[0] and b"METHOD:CANCEL" in sent[1]


def test_imip_request_from_a_remote_organizer_lands_in_the_calendar(cal: Any) -> None:
    def request(sender: str, organizer: str, mid: str) -> bytes:
        body = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//remote//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
                "UID:remote-1\r\nDTSTAMP:20240102T000000Z\r\nDTSTART:20240601T090000Z\r\nDTEND:20240601T100000Z\r\n"
                f"SUMMARY:Remote party\r\nORGANIZER:mailto:{organizer}\r\n"
                f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{BOB}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        return (f"From: {sender}\r\nTo: {BOB}\r\nSubject: Invitation\r\nMessage-ID: {mid}\r\n"
                f"Content-Type: text/calendar; method=REQUEST; charset=utf-8\r\n\r\n{body}").encode()

    deliver(cal, BOB, request("mallory@evil.test", "dave@remote.test", "<m1@x>"))
    assert cal.dav("GET", f"/dav/calendars/{BOB}/calendar/remote-1.ics", user=BOB).status == 404
    deliver(cal, BOB, request("dave@remote.test", "dave@remote.test", "<m2@x>"))
    got = cal.dav("GET", f"/dav/calendars/{BOB}/calendar/remote-1.ics", user=BOB)
    assert got.status == 200 and b"Remote party" in got.body and b"METHOD" not in got.body
    # bob accepts: the REPLY goes to the remote organizer by email
    text = got.body.decode().replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED")
    assert cal.put(f"/dav/calendars/{BOB}/calendar/remote-1.ics", text, user=BOB).status == 204
    (row, raw), = queued(cal)
    assert row.rcpt_to == ("dave@remote.test",) and b"METHOD:REPLY" in raw and b"PARTSTAT=ACCEPTED" in raw


def test_rest_event_with_attendees_invites_them(cal: Any) -> None:
    r = cal.api("POST", "/api/events", {"summary": "Call", "start": "2024-06-03T09:00:00Z",
                                        "end": "2024-06-03T09:30:00Z", "attendees": [BOB]})
    assert r.status == 201, r.body
    items = cal.api("GET", "/api/events?from=2024-06-01T00:00:00Z&to=2024-06-10T00:00:00Z", user=BOB).json()
    assert [i["summary"] for i in items["items"]] == ["Call"]


@pytest.mark.parametrize("results,sender,expected", [
    ("spf=pass smtp.mailfrom=carol@remote.test; dkim=none; dmarc=none header.from=remote.test", CAROL, True),
    ("spf=none smtp.mailfrom=x@other.test; dkim=pass header.d=mail.remote.test header.s=s", CAROL, True),
    ("spf=none smtp.mailfrom=x@other.test; dkim=none; dmarc=pass header.from=remote.test", CAROL, True),
    ("spf=pass smtp.mailfrom=x@other.test; dkim=none; dmarc=none header.from=remote.test", CAROL, False),
    ("spf=softfail smtp.mailfrom=carol@remote.test; dkim=fail header.d=remote.test", CAROL, False),
])
def test_imip_needs_an_authenticated_sender(results: str, sender: str, expected: bool) -> None:
    from tau.calendar.imip import authenticated

    raw = (f"Authentication-Results: mx.example.test; {results}\r\nAuthentication-Results: evil; spf=pass "
           f"smtp.mailfrom={sender}\r\nFrom: {sender}\r\n\r\nx").encode()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert authenticated(msg, "mx.example.test", sender) is expected
    assert authenticated(msg, "other.example.test", sender) is None
