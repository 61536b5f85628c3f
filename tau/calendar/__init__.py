"""TauCalendar (issue 6): CalDAV (RFC 4791) with scheduling (RFC 6638, iMIP RFC 6047), sharing and
REST ``/api/events`` — one store and instance index behind all of them."""
