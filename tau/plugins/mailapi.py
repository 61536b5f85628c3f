"""TauMail REST (/api/emails), OpenPGP keys and WKD (issue 4)."""
from tau.app.plugins import LazyService

mailapi = LazyService("mailapi", "tau.mail.api_service", order=45)
