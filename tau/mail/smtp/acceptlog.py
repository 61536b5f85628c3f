"""One log line per message SMTP accepted, in Postfix's ``key=value`` form (grep, fail2ban)::

    smtp accepted queue_id=4f2a9c message_id=<x@y> listener=mx client=mx.sender.test[192.0.2.1]
      from=<a@sender.test> to=<bob@example.test>,<carol@example.test> size=1234 folder=INBOX
      spf=pass dkim=pass dmarc=pass spam=ham

``user=`` names the authenticated submitter on submission; the SPF/DKIM/DMARC results and the spam
verdict are ``off`` where the check is disabled and ``unchecked`` without rspamd. The message is
counted in ``tau_mail_inbound_accepted{listener}``.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

log = Logger(namespace="tau.mail.smtp")


def accepted_line(registry: Any, envelope: Any, submission: bool, size: int, message_id: str | None,
                  folder: str) -> None:
    listener = "submission" if submission else "mx"
    checks = envelope.checks
    fields = {"queue_id": envelope.queue_id, "message_id": (message_id or "").strip("<>"), "listener": listener,
              "client": f"{envelope.helo or 'unknown'}[{envelope.client_ip or 'unknown'}]",
              "mail_from": envelope.mail_from, "to": ",".join(f"<{r}>" for r in envelope.recipients),
              "size": size, "folder": folder, "user": envelope.user.address if envelope.user is not None else "-",
              "spf": checks.get("spf", "off"), "dkim": checks.get("dkim", "off"),
              "dmarc": checks.get("dmarc", "off"), "spam": checks.get("spam", "unchecked")}
    log.info("smtp accepted queue_id={queue_id} message_id=<{message_id}> listener={listener} client={client}"
             " user={user} from=<{mail_from}> to={to} size={size} folder={folder} spf={spf} dkim={dkim}"
             " dmarc={dmarc} spam={spam}", **fields)
    registry.metrics.mail_accepted.labels(listener).inc()
