"""iMIP cannot be forged by a local user (issue 13, item 4): scheduling messages sent through SMTP
submission are applied only as the authenticated user, and mail from the MX claiming one of our
own domains is never applied. In process, real SMTP bytes, both engines."""

from __future__ import annotations

from typing import Any

import pytest

from tau.auth import sendas
from tau.calendar.imip import sender_trusted
from tests.support.calendars import ALICE, BOB, CAROL, PASSWORD, ics
from tests.support.smtp import Client, mailbox_messages, make_factory

INVITE = (f"ORGANIZER;CN=Alice:mailto:{ALICE}\nATTENDEE;PARTSTAT=ACCEPTED:mailto:{ALICE}\n"
          f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{CAROL}")


def imip(sender: str, to: str, method: str, uid: str, organizer: str, attendee: str, partstat: str = "NEEDS-ACTION",
         extra: str = "", message_id: str = "") -> bytes:
    cal = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//evil//EN\r\n"
           f"METHOD:{method}\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240102T000000Z\r\nSEQUENCE:5\r\n"
           "DTSTART:20240601T090000Z\r\nDTEND:20240601T100000Z\r\nSUMMARY:Forged\r\n"
           f"ORGANIZER:mailto:{organizer}\r\nATTENDEE;PARTSTAT={partstat}:mailto:{attendee}\r\n"
           + ("STATUS:CANCELLED\r\n" if method == "CANCEL" else "") + "END:VEVENT\r\nEND:VCALENDAR\r\n")
    message_id = message_id or f"<{method.lower()}-{uid}-{sender}>"
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {method}\r\nMessage-ID: {message_id}\r\n{extra}"
            f"MIME-Version: 1.0\r\nContent-Type: text/calendar; method={method}; charset=utf-8\r\n\r\n{cal}").encode()


def submitter(cal: Any, user: str) -> Client:
    c = Client(make_factory(cal.registry, cal.registry.mail_store, "submission"))
    c.submit_ready(user, PASSWORD)
    return c


def event(cal: Any, user: str, uid: str) -> str | None:
    got = cal.dav("GET", f"/dav/calendars/{user}/calendar/{uid}.ics", user=user)
    return got.body.decode().replace("\r\n ", "") if got.status == 200 else None


def partstat(text: str, who: str) -> str:
    line = next(x for x in text.splitlines() if x.startswith("ATTENDEE") and who in x)
    return line.split("PARTSTAT=")[1].split(";")[0].split(":")[0]


@pytest.fixture
def team(cal: Any) -> Any:
    """alice organizes team-1 with carol invited (carol's copy made by local scheduling)."""
    assert cal.put("calendar/team-1.ics", ics("team-1", summary="Team", extra=INVITE)).status == 201
    assert event(cal, CAROL, "team-1") is not None
    return cal


def test_bob_cannot_forge_alices_request_or_cancel_to_carol(team: Any) -> None:
    bob = submitter(team, BOB)
    # with alice's From, submission refuses the message outright
    replies = bob.mail(BOB, [CAROL], imip(ALICE, CAROL, "REQUEST", "forged-1", ALICE, CAROL))
    assert (replies[-1].code, replies[-1].text[:6]) == (553, "5.7.1 ")
    inbox_before = len(mailbox_messages(team.registry.mail_store, CAROL))
    # with his own From and alice as ORGANIZER: delivered as mail, never applied
    for method, uid in (("REQUEST", "forged-2"), ("REQUEST", "team-1"), ("CANCEL", "team-1")):
        data = imip(BOB, CAROL, method, uid, ALICE, CAROL,
                    extra=f"Authentication-Results: {team.registry.config.tau.hostname}; dmarc=pass "
                          f"header.from={ALICE.split('@')[1]}\r\n")
        assert bob.mail(BOB, [CAROL], data)[-1].code == 250
    assert len(mailbox_messages(team.registry.mail_store, CAROL)) == inbox_before + 3
    assert event(team, CAROL, "forged-1") is None and event(team, CAROL, "forged-2") is None
    mine = event(team, CAROL, "team-1")
    assert mine is not None and "Forged" not in mine and "CANCELLED" not in mine


def test_bob_cannot_forge_carols_reply_to_alice(team: Any) -> None:
    bob = submitter(team, BOB)
    forged = imip(CAROL, ALICE, "REPLY", "team-1", ALICE, CAROL, "DECLINED")
    replies = bob.mail(BOB, [ALICE], forged)
    assert (replies[-1].code, replies[-1].text[:6]) == (553, "5.7.1 ")
    as_bob = imip(BOB, ALICE, "REPLY", "team-1", ALICE, CAROL, "DECLINED")
    assert bob.mail(BOB, [ALICE], as_bob)[-1].code == 250
    assert partstat(event(team, ALICE, "team-1") or "", CAROL) == "NEEDS-ACTION"


def test_genuine_organizer_request_and_attendee_reply_still_apply(team: Any) -> None:
    alice = submitter(team, ALICE)
    request = imip(ALICE, CAROL, "REQUEST", "genuine-1", ALICE, CAROL)
    assert alice.mail(ALICE, [CAROL], request)[-1].code == 250
    assert "Forged" in (event(team, CAROL, "genuine-1") or "")
    carol = submitter(team, CAROL)
    reply = imip(f"Carol <{CAROL}>", ALICE, "REPLY", "team-1", ALICE, CAROL, "ACCEPTED")
    assert carol.mail(CAROL, [ALICE], reply)[-1].code == 250
    assert partstat(event(team, ALICE, "team-1") or "", CAROL) == "ACCEPTED"


def test_a_send_as_grant_lets_bob_organize_as_the_shared_address(team: Any) -> None:
    shared = "shared@example.test"
    team.registry.db.sync.run("grant", sendas.grant, BOB, shared)
    bob = submitter(team, BOB)
    assert bob.mail(shared, [CAROL], imip(shared, CAROL, "REQUEST", "shared-1", shared, CAROL))[-1].code == 250
    assert event(team, CAROL, "shared-1") is not None


def test_mx_mail_claiming_our_domain_is_not_applied(team: Any) -> None:
    mx = Client(make_factory(team.registry, team.registry.mail_store, "smtp"))
    mx.ehlo("evil.test")
    assert mx.mail(ALICE, [CAROL], imip(ALICE, CAROL, "REQUEST", "mx-1", ALICE, CAROL))[-1].code == 250
    assert event(team, CAROL, "mx-1") is None
    assert mx.mail("dave@remote.test", [CAROL],
                   imip("dave@remote.test", CAROL, "REQUEST", "mx-2", "dave@remote.test", CAROL))[-1].code == 250
    assert event(team, CAROL, "mx-2") is not None


def test_the_identity_comes_from_the_session(team: Any) -> None:
    """Defence in depth: even a From submission did not check is applied only as the submitter."""
    run = team.registry.db.sync.run
    assert not run("t", sender_trusted, {"via": "submission", "user": BOB}, ALICE, readonly=True)
    assert run("t", sender_trusted, {"via": "submission", "user": ALICE}, ALICE, readonly=True)
    assert not run("t", sender_trusted, {"via": "submission", "user": "gone@example.test"}, ALICE, readonly=True)
    assert not run("t", sender_trusted, {"via": "mx"}, ALICE, readonly=True)
    assert run("t", sender_trusted, {"via": "mx"}, "dave@remote.test", readonly=True)


def test_without_the_header_check_bobs_forgery_is_still_not_applied(team: Any, monkeypatch: Any) -> None:
    """If the From check at submission were ever bypassed (a parser bug), the iMIP receiver still
    takes the sender from the SMTP session: bob's message claiming alice changes nothing."""
    from tau.mail.smtp.delivery import Delivery

    async def no_check(self: Any, envelope: Any, bare_cr: bool, head: Any, **_: Any) -> None:
        return None

    monkeypatch.setattr(Delivery, "check_message", no_check)
    bob = submitter(team, BOB)
    assert bob.mail(BOB, [CAROL], imip(ALICE, CAROL, "REQUEST", "bypass-1", ALICE, CAROL))[-1].code == 250
    assert bob.mail(BOB, [CAROL], imip(ALICE, CAROL, "CANCEL", "team-1", ALICE, CAROL))[-1].code == 250
    assert bob.mail(BOB, [ALICE], imip(CAROL, ALICE, "REPLY", "team-1", ALICE, CAROL, "DECLINED"))[-1].code == 250
    assert event(team, CAROL, "bypass-1") is None
    assert "CANCELLED" not in (event(team, CAROL, "team-1") or "")
    assert partstat(event(team, ALICE, "team-1") or "", CAROL) == "NEEDS-ACTION"
