"""One log line per outbound delivery attempt and recipient, in Postfix's ``key=value`` form so
``grep status=bounced`` and fail2ban filters work on the daemon's log::

    delivery queue_id=12 message_id=<a@b> from=<alice@example.test> to=<bob@remote.test>
      relay=mx.remote.test[192.0.2.7] tls=TLSv1.3 delay=3 attempts=1 status=sent reply="250 2.0.0 Ok"

``status`` is ``sent``, ``deferred`` (will be retried), ``bounced`` (a permanent refusal) or
``expired`` (retried until ``[outbound] lifetime`` ran out; bounced too). The same values go on the
event as fields (``queue_id``, ``status``, ...) for JSON log consumers, and the outcome is
counted in ``tau_mail_deliveries_total{status}``.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

log = Logger(namespace="tau.mail.delivery")
EXPIRED_PREFIX = "4.4.7 Delivery time expired"


def quote(text: str) -> str:
    """A value in double quotes, inner quotes and line breaks made harmless."""
    return '"' + " ".join(str(text).split()).replace("\\", "\\\\").replace('"', "'") + '"'


def status_of(outcome: list[Any]) -> str:
    state = outcome[0]
    if state == "sent":
        return "sent"
    if state == "retry":
        return "deferred"
    return "expired" if str(outcome[2]).startswith(EXPIRED_PREFIX) else "bounced"


def relay_of(remote: str, ip: str) -> str:
    if not remote:
        return "none"
    return f"{remote}[{ip}]" if ip else remote


def log_attempt(row: Any, outcomes: dict[str, list[Any]], sessions: dict[str, tuple[str, str]], now: int,
                metrics: Any = None) -> None:
    """The lines of one attempt of queue row ``row`` (``rows.Claimed``): one per recipient tried."""
    for rcpt, outcome in outcomes.items():
        status = status_of(outcome)
        ip, tls = sessions.get(rcpt, ("", ""))
        remote = str(outcome[3]) if len(outcome) > 3 else ""
        reply = f"{outcome[1]} {outcome[2]}".strip()
        fields = {"queue_id": row.id, "message_id": row.message_id or "", "mail_from": row.mail_from or "",
                  "rcpt": rcpt, "relay": relay_of(remote, ip), "tls": tls or "none",
                  "delay": max(0, now - row.created_at), "attempts": row.attempts + 1, "status": status,
                  "reply": quote(reply)}
        log.info("delivery queue_id={queue_id} message_id=<{message_id}> from=<{mail_from}> to=<{rcpt}>"
                 " relay={relay} tls={tls} delay={delay} attempts={attempts} status={status} reply={reply}",
                 **fields)
        if metrics is not None:
            metrics.mail_deliveries.labels(status).inc()
