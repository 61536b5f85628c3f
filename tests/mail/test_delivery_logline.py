"""The delivery log line's ``status=``: how a recipient's outcome reads to an operator."""

from __future__ import annotations

from tau.mail.outbound.logline import quote, relay_of, status_of


def test_outcomes_map_to_postfix_statuses() -> None:
    assert status_of(["sent", 250, "2.0.0 Ok", "mx.remote.test"]) == "sent"
    assert status_of(["retry", 451, "4.4.1 connect failed", ""]) == "deferred"
    assert status_of(["failed", 550, "5.1.1 no such user", "mx.remote.test"]) == "bounced"
    assert status_of(["failed", 451, "4.4.7 Delivery time expired; last error: 451 busy", ""]) == "expired"


def test_reply_and_relay_cannot_break_the_line() -> None:
    assert quote('250 2.0.0 "ok"\r\n and more') == "\"250 2.0.0 'ok' and more\""
    assert relay_of("mx.remote.test", "192.0.2.7") == "mx.remote.test[192.0.2.7]"
    assert relay_of("", "") == "none"
