"""TauMail outbound delivery (issue 4): the queue worker, MX routing, the SMTP client, DSNs.

``service`` (the Twisted service and its loop), ``rows`` (queue SQL), ``transfer`` (routing and one
SMTP transaction), ``client`` (the ESMTP client protocol), ``dns`` (twisted.names look-ups),
``mtasts`` (RFC 8461), ``dsn`` (RFC 3464 reports) and ``testing`` (a remote MX world for tests).
"""
