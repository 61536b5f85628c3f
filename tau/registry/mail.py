"""The mail floor: the store every mail-touching service shares, DNS, delivery and MX checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tau.registry.core import component
from tau.registry.platform import PlatformComponents

if TYPE_CHECKING:
    from tau.mail.outbound.dns import MailDNS
    from tau.mail.outbound.service import OutboundService
    from tau.mail.smtp.activity import Activity
    from tau.mail.store import MailStore
    from tau.mail.trust.inbound import InboundChecks


class MailComponents(PlatformComponents):
    @component
    def mail_store(self) -> MailStore:
        """The one MailStore every mail-touching service (SMTP, IMAP, API, calendar...) shares."""
        from tau.mail.store import MailStore

        return MailStore(self.whole)

    @component
    def mail_dns(self) -> MailDNS:
        """The resolver shared by delivery (MX, MTA-STS) and the MX checks (SPF, DKIM, DMARC)."""
        from tau.mail.outbound.dns import MailDNS

        return MailDNS(self.reactor, self.config.outbound.resolver)

    @component
    def mail_activity(self) -> Activity:
        """When SMTP last took part in a transaction; delivery gives way to it."""
        from tau.mail.smtp.activity import Activity

        return Activity(self.reactor)

    @component
    def outbound(self) -> OutboundService:
        """The delivery worker. The ``outbound`` plugin runs it; without that plugin
        (``serving("outbound")`` false) queued mail waits and ``kick()`` does nothing."""
        from tau.mail.outbound.service import OutboundService

        return OutboundService(self.whole, self.mail_store)

    @component
    def inbound_checks(self) -> InboundChecks | None:
        """SPF/DKIM/DMARC/spam on MX mail, whichever plugins run. ``None`` only where a test
        provides it so (in-process SMTP tests check nothing, as they make no DNS queries)."""
        from tau.mail.trust.inbound import InboundChecks

        return InboundChecks(self.whole)
