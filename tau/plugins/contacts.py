"""TauContacts: CardDAV under ``/dav/addressbooks/``, REST ``/api/contacts`` (issue 17)."""
from tau.app.plugins import LazyService

contacts = LazyService("contacts", "tau.contacts.service", order=56)
