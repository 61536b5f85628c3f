"""TauMail outbound delivery and inbound trust checks (issue 4)."""
from tau.app.plugins import LazyService

outbound = LazyService("outbound", "tau.mail.outbound.service", order=35)
