"""TauCalendar: CalDAV under ``/dav/``, scheduling and iMIP, REST ``/api/events`` (issue 6)."""
from tau.app.plugins import LazyService

calendar = LazyService("calendar", "tau.calendar.service", order=55)
