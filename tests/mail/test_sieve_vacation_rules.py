"""Whom vacation answers (RFC 5230 §4.5, RFC 3834 §2) and what the answer looks like."""

from __future__ import annotations

import pytest

from tau.mail.sieve.interpret import MessageView
from tau.mail.sieve.vacation import handle, period, reply, should_answer

USER = "carol@example.test"
REQUEST = {"reason": "Back on Monday.", "days": None, "subject": None, "from": None, "addresses": (),
           "handle": None, "mime": False}


def message(sender: str = "bob@remote.test", to: str = USER, **headers: str) -> MessageView:
    fields = (("From", sender), ("To", to), ("Subject", "question"), ("Message-ID", "<q1@remote.test>"),
              *((k.replace("_", "-"), v) for k, v in headers.items()))
    return MessageView(fields, "", 100, sender, USER, 1_800_000_000.0)


def test_a_person_writing_to_the_user_is_answered() -> None:
    assert should_answer(message(), USER, REQUEST)


@pytest.mark.parametrize("sender", ["", "MAILER-DAEMON@remote.test", "owner-list@remote.test",
                                    "list-request@remote.test", USER])
def test_robots_lists_and_the_user_herself_are_not_answered(sender: str) -> None:
    assert not should_answer(message(sender=sender), USER, REQUEST)


@pytest.mark.parametrize("header", [{"Auto_Submitted": "auto-generated"}, {"Precedence": "bulk"},
                                    {"Precedence": "list"}, {"List_Id": "<news.remote.test>"}])
def test_automatic_and_list_mail_is_not_answered(header: dict[str, str]) -> None:
    assert not should_answer(message(**header), USER, REQUEST)


def test_auto_submitted_no_is_a_person() -> None:
    assert should_answer(message(Auto_Submitted="no"), USER, REQUEST)


def test_mail_not_naming_the_user_is_not_answered_unless_an_address_matches() -> None:
    assert not should_answer(message(to="team@example.test"), USER, REQUEST)
    assert should_answer(message(to="team@example.test"), USER, {**REQUEST, "addresses": ("team@example.test",)})


def test_the_period_is_seven_days_by_default_and_clamped() -> None:
    assert period(REQUEST) == 7 * 86400
    assert period({**REQUEST, "days": 0}) == 86400 and period({**REQUEST, "days": 1000}) == 90 * 86400


def test_the_handle_changes_with_the_reason() -> None:
    assert handle(REQUEST) != handle({**REQUEST, "reason": "Away until June."})
    assert handle({**REQUEST, "handle": "summer"}) == "summer"


def test_the_answer_is_an_rfc_3834_auto_reply() -> None:
    raw = reply(message(), USER, {**REQUEST, "subject": "Away\r\nBcc: victim@remote.test"}, "mx.example.test")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"\r\nAuto-Submitted: auto-replied (vacation)\r\n" in head
    assert b"\r\nIn-Reply-To: <q1@remote.test>\r\n" in head and b"\r\nTo: <bob@remote.test>\r\n" in head
    assert b"\r\nBcc:" not in head                      # a line break in the subject adds no header
    assert body == b"Back on Monday.\r\n"
