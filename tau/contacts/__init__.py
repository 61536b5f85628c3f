"""TauContacts: CardDAV address books (RFC 6352), REST ``/api/contacts`` and collected addresses."""
