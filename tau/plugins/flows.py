"""Cross-service flows: mail → call, chat, event, cloud (issue 9)."""
from tau.app.plugins import LazyService

flows = LazyService("flows", "tau.flows.service", order=90)
