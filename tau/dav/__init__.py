"""The WebDAV core (RFC 4918 class 1 and 2, RFC 4331 quota, RFC 6578 sync-collection).

Protocol only: resources, live and dead properties, reports, locks and conditional requests.
Stores plug in by implementing ``tau.dav.resource`` (``DavProvider``, ``Resource``,
``Collection``) — TauCloud's file tree does, CalDAV's calendars will; ``tau.dav.server.DavServer``
is the twisted.web resource that dispatches methods to one module per method family.
"""
