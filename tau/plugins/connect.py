"""TauConnect: calls, ``/ws/signal``, TURN credentials, SFU workers (issue 8)."""
from tau.app.plugins import LazyService

connect = LazyService("connect", "tau.connect.service", order=70)
