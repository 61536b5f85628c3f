"""Mail authentication (issue 4): DKIM signing and verification, SPF, DMARC, Authentication-Results
and the Rspamd client. ``inbound.InboundChecks`` is what the MX asks at the end of data."""
