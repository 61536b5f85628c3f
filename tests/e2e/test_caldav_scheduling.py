"""Invitations across services against the real daemon (issue 6, Acceptance): alice invites bob
(local) and carol on the test peer MX; bob's calendar, scheduling inbox and mail INBOX have it,
carol receives an iMIP email with a text/calendar part, and carol's REPLY sent by SMTP to tau's MX
marks her PARTSTAT ACCEPTED in alice's event."""

from __future__ import annotations

import email
import email.policy
import smtplib
import time
from typing import Any

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

caldav = pytest.importorskip("caldav")
pytestmark = pytest.mark.e2e
ALICE, BOB, CAROL, PASSWORD = "alice@example.test", "bob@example.test", "carol@remote.test", "secret-Pa55"
INVITE = f"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//tests//EN
BEGIN:VEVENT
UID:kickoff-1
DTSTAMP:20240101T000000Z
DTSTART:20240610T090000Z
DTEND:20240610T100000Z
SUMMARY:Kickoff
ORGANIZER;CN=Alice:mailto:{ALICE}
ATTENDEE;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:{ALICE}
ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{BOB}
ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{CAROL}
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture(scope="module", params=engines())
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.support.smtp import DaemonStore

    folder = tmp_path_factory.mktemp(f"sched-{request.param}")
    url = daemon_database_url(request)
    peer = None
    try:
        from tests.support.outbound import RemotePeer

        zone = {"remote.test": [["MX", 10, "mx.remote.test"], ["TXT", "v=spf1 ip4:127.0.0.0/8 -all"]],
                "mx.remote.test": [["A", "127.0.0.1"]]}
        peer = RemotePeer(folder, zone).start()
    except ImportError:
        pass
    d = TauDaemon(folder, database_url=url, listeners=("smtp", "http"),
                  extra={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}).init()
    for user in (ALICE, BOB):
        d.add_user(user, PASSWORD)
    if peer is not None:
        d.env.update({"TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{peer.dns_port}", "TAU_OUTBOUND_PORT": str(peer.smtp_port),
                      "TAU_OUTBOUND_POLL_INTERVAL": "1", "TAU_OUTBOUND_RETRY_BASE": "1",
                      "TAU_OUTBOUND_SMARTHOST_TLS": "none"})
    d.start("smtp")
    store = DaemonStore(d)
    yield d, peer, store
    store.close()
    d.stop()
    if peer is not None:
        peer.stop()


def wait(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def attendee(text: str, who: str) -> str:
    return next(line for line in text.replace("\r\n ", "").splitlines() if line.startswith("ATTENDEE") and who in line)


def test_alice_invites_bob_and_carol_and_carols_smtp_reply_is_applied(world: Any) -> None:
    daemon, peer, store = world
    alice = caldav.DAVClient(url=daemon.url + "/.well-known/caldav", username=ALICE, password=PASSWORD).principal()
    calendar = next(c for c in alice.calendars() if str(c.url).rstrip("/").endswith("/calendar"))
    calendar.save_event(INVITE)

    bob = caldav.DAVClient(url=daemon.url + "/dav/", username=BOB, password=PASSWORD).principal()
    bob_cal = next(c for c in bob.calendars() if str(c.url).rstrip("/").endswith("/calendar"))
    copy = bob_cal.event_by_uid("kickoff-1")
    assert "PARTSTAT=NEEDS-ACTION" in attendee(copy.data, BOB)
    assert len(bob.schedule_inbox().get_items()) == 1
    assert wait(lambda: store.count(BOB) == 1)
    assert b"text/calendar" in store.messages(BOB)[0]

    # carol's invitation: the outbound queue, then the peer MX when outbound delivery runs here
    rows = store.query("SELECT rcpt_to, blob_key FROM outbound_queue")
    assert len(rows) == 1 and CAROL in rows[0][0]
    if peer is not None:
        got = wait(lambda: peer.messages())
        assert got, "the iMIP invitation did not reach the peer MX"
        envelope, raw = got[0]
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
        assert part.get_param("method") == "REQUEST" and "UID:kickoff-1" in part.get_content()
        assert CAROL in str(envelope)

    reply = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//remote//EN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n"
             f"UID:kickoff-1\r\nDTSTAMP:20240102T000000Z\r\nORGANIZER:mailto:{ALICE}\r\n"
             f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{CAROL}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    message = (f"From: Carol <{CAROL}>\r\nTo: {ALICE}\r\nSubject: Accepted: Kickoff\r\n"
               "Message-ID: <reply-kickoff@remote.test>\r\nDate: Mon, 03 Jun 2024 10:00:00 +0000\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/calendar; method=REPLY; charset=utf-8\r\n\r\n" + reply)
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as smtp:
        smtp.sendmail(CAROL, [ALICE], message.encode())

    def partstat() -> str:
        return attendee(calendar.event_by_uid("kickoff-1").data, CAROL)

    assert wait(lambda: "PARTSTAT=ACCEPTED" in partstat()), partstat()
    if peer is not None:  # a forged REPLY: From carol, sent by someone SPF cannot vouch for
        forged = message.replace("PARTSTAT=ACCEPTED", "PARTSTAT=DECLINED").replace(
            "<reply-kickoff@remote.test>", "<forged@unchecked.test>")
        with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as smtp:
            smtp.sendmail("carol@unchecked.test", [ALICE], forged.encode())
        assert wait(lambda: store.count(ALICE) >= 2)
        time.sleep(1)
        assert "PARTSTAT=ACCEPTED" in partstat()
