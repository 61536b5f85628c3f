"""The web app: sign-in, shell and webmail at ``/`` (issue 19)."""
from tau.app.plugins import LazyService

web = LazyService("web", "tau.web.service", order=96)
