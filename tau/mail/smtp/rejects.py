"""Why an SMTP reply refused mail, as a short label for ``tau_mail_inbound_rejected{reason}``.

Only refusals of a mail transaction count (sender, recipient, message); a syntax error, a wrong
command order or a failed AUTH is not "mail rejected" (AUTH failures are ``tau_logins``).
"""

from __future__ import annotations

#: (enhanced status code prefix, word in the text or "", reason); the first match wins
_RULES: tuple[tuple[str, str, str], ...] = (
    ("5.1.1", "", "unknown_user"),
    ("5.7.1", "relay", "relay_denied"),
    ("5.7.1", "dmarc", "dmarc"),
    ("5.7.1", "spam", "spam"),
    ("5.7.1", "not owned", "sender_not_owned"),
    ("5.7.23", "", "spf"),
    ("5.3.4", "", "too_big"),
    ("5.2.2", "", "mailbox_full"),
    ("5.6.0", "", "malformed"),
    ("4.5.3", "", "too_many_recipients"),
    ("5.7.10", "", "requiretls"),
    ("4.3.0", "", "local_error"),
    ("4.7.0", "too many connections", "connection_limit"),
)


def reject_reason(code: int, text: str) -> str | None:
    """The label of a mail refusal, or None when the reply is no such thing."""
    if code < 400:
        return None
    enhanced, _, rest = text.partition(" ")
    lowered = rest.lower()
    for prefix, word, reason in _RULES:
        if enhanced == prefix and (not word or word in lowered):
            return reason
    return None
