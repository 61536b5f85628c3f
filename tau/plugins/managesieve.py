"""ManageSieve (RFC 5804) and the Sieve REST API (/api/vacation, /api/filters)."""
from tau.app.plugins import LazyService

managesieve = LazyService("managesieve", "tau.mail.sieve.service", order=42)
