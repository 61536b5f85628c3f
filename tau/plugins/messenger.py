"""TauMessenger: E2E messaging relay, ``/ws/messages``, presence (issue 7)."""
from tau.app.plugins import LazyService

messenger = LazyService("messenger", "tau.messenger.service", order=60)
