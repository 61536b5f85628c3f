"""CardDAV (RFC 6352) on the protocol-only WebDAV core: properties and reports.

Like ``tau.calendar.caldav``, this module only registers: live properties on the server's
``PropertyRegistry`` (principal and home discovery, address-book metadata, ``getctag``,
privileges) and the CardDAV reports (``tau.contacts.reports``). ``principal_properties`` is what
another DAV tree's principals add so a client that found them finds the address books too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from tau.contacts import reports
from tau.contacts.davtree import CARD, NS_CARD, PREFIX, AddressBook, CardResource, Home
from tau.contacts.vcard import MAX_RESOURCE_SIZE
from tau.dav.properties import LiveProperty, PropContext, PropertyRegistry
from tau.dav.resource import Resource

if TYPE_CHECKING:
    from tau.dav.server import DavServer

CS = "{http://calendarserver.org/ns/}"


def _href(path: str) -> str:
    return f"<D:href>{escape(path)}</D:href>"


def _home_set(r: Resource, p: PropContext) -> str | None:
    """On any principal (this tree's, or CalDAV's ``/dav/principals/USER/``)."""
    if "{DAV:}principal" not in r.resource_types or p.user is None:
        return None
    return _href(f"{PREFIX}/{p.user.address.lower()}/")


def _principal_url(r: Resource, p: PropContext) -> str | None:
    return _href(f"{PREFIX}/{r.user.address}/") if isinstance(r, Home) else None


def _principal_address(r: Resource, p: PropContext) -> str | None:
    return None


def _owner(r: Resource, p: PropContext) -> str | None:
    if isinstance(r, AddressBook):
        return _href(f"{PREFIX}/{r.book.owner}/")
    if isinstance(r, Home):
        return _href(f"{PREFIX}/{r.user.address}/")
    return None


_READ = ["read", "read-current-user-privilege-set"]
_WRITE = ["write", "write-properties", "write-content", "bind", "unbind"]


def _privileges(r: Resource, p: PropContext) -> str:
    names = _READ + (_WRITE if r.writable else [])
    return "".join(f"<D:privilege><D:{n}/></D:privilege>" for n in names)


def _principal_collections(r: Resource, p: PropContext) -> str:
    return _href(f"{PREFIX}/")


def _description(r: Resource, p: PropContext) -> str | None:
    if isinstance(r, AddressBook) and r.book.description:
        return escape(r.book.description)
    return None


def _data_types(r: Resource, p: PropContext) -> str | None:
    if not isinstance(r, AddressBook):
        return None
    return "".join(f'<x:address-data-type xmlns:x="{NS_CARD}" content-type="text/vcard" version="{v}"/>'
                   for v in ("3.0", "4.0"))


def _max_size(r: Resource, p: PropContext) -> str | None:
    return str(MAX_RESOURCE_SIZE) if isinstance(r, AddressBook) else None


def _ctag(r: Resource, p: PropContext) -> str | None:
    return escape(f"{r.book.id}-{r.book.sync_seq}") if isinstance(r, AddressBook) else None


def _address_data(r: Resource, p: PropContext) -> str | None:
    return escape(r.row.data) if isinstance(r, CardResource) and r.row.data is not None else None


def principal_properties(registry: PropertyRegistry) -> None:
    """``CARDDAV:addressbook-home-set`` on every principal of a DAV tree (RFC 6352 §7.1.1)."""
    registry.register(LiveProperty(CARD + "addressbook-home-set", _home_set))


def properties(registry: PropertyRegistry) -> None:
    d = "{DAV:}"
    principal_properties(registry)
    for prop in [
        LiveProperty(d + "principal-URL", _principal_url),
        LiveProperty(d + "principal-collection-set", _principal_collections, allprop=False),
        LiveProperty(d + "owner", _owner, allprop=False),
        LiveProperty(d + "current-user-privilege-set", _privileges, allprop=False),
        LiveProperty(CARD + "principal-address", _principal_address, allprop=False),
        LiveProperty(CARD + "addressbook-description", _description, protected=False),
        LiveProperty(CARD + "supported-address-data", _data_types),
        LiveProperty(CARD + "max-resource-size", _max_size),
        LiveProperty(CARD + "address-data", _address_data, allprop=False),
        LiveProperty(CS + "getctag", _ctag),
    ]:
        registry.register(prop)


def register(server: DavServer) -> None:
    """Everything CardDAV adds to a DavServer."""
    properties(server.properties)
    server.reports.register(CARD + "addressbook-query", reports.addressbook_query)
    server.reports.register(CARD + "addressbook-multiget", reports.addressbook_multiget)
