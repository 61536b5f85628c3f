"""The Registry: every shared component, built lazily once, handed to each service.

Services take the registry and pull what they need (``registry.db``, ``registry.mail_store``...),
never from module globals (CalendarServer's global ``config`` is the warning; Synapse's
``HomeServer`` with ``cache_in_self`` is the model). Each component is one typed getter whose
builder names its own dependencies; builders are cached with cycle detection, so a test can build a
registry with a fake reactor and synchronous threads. The getters live on three floors, each a
class built on the one below: platform (database, blobs, bus, login), mail, services.
"""

from __future__ import annotations

from tau.registry.core import RegistryCycle, component
from tau.registry.services import RoomMaker, ServiceComponents

__all__ = ["Registry", "RegistryCycle", "RoomMaker", "component"]


class Registry(ServiceComponents):
    """The one registry of a tau process (or of a test)."""
