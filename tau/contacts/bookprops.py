"""Address-book properties kept in columns (displayname, addressbook-description), and the
extended MKCOL body (RFC 5689 §3, RFC 6352 §6.3.1) that creates a book with them."""

from __future__ import annotations

from typing import Any

from defusedxml.ElementTree import fromstring

from tau.dav.errors import DavError
from tau.dav.xml import dav, element_to_xml

NS_CARD = "urn:ietf:params:xml:ns:carddav"
DESCRIPTION = "{" + NS_CARD + "}addressbook-description"
_COLUMNS = {dav("displayname"): "display_name", DESCRIPTION: "description"}


def _text_of(xml: str) -> str:
    try:
        return (fromstring(xml, forbid_dtd=True, forbid_entities=True).text or "").strip()[:4096]
    except Exception:
        return ""


def column_updates(to_set: dict[str, str], remove: list[str]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Split a PROPPATCH into column updates and dead properties."""
    columns: dict[str, str] = {}
    dead: dict[str, str] = {}
    for name, xml in to_set.items():
        if name in _COLUMNS:
            columns[_COLUMNS[name]] = _text_of(xml)
        elif name != dav("resourcetype"):
            dead[name] = xml
    gone = [n for n in remove if n not in _COLUMNS]
    for name in remove:
        if name in _COLUMNS:
            columns[_COLUMNS[name]] = ""
    return columns, dead, gone


def mkcol_props(body: Any) -> tuple[str, str]:
    """(displayname, description) of an extended MKCOL whose resourcetype is an address book."""
    if body is None:
        raise DavError(403, "only address books can be created here (extended MKCOL)")
    if body.tag != dav("mkcol"):
        raise DavError(415, "MKCOL body not understood")
    props: dict[str, str] = {}
    for instruction in body:
        for prop in instruction if instruction.tag == dav("set") else []:
            for elem in prop if prop.tag == dav("prop") else []:
                props[elem.tag] = element_to_xml(elem)
    rtype = props.get(dav("resourcetype"), "")
    if "addressbook" not in rtype or NS_CARD not in rtype:
        raise DavError(403, "only address books can be created here", "<D:valid-resourcetype/>")
    return _text_of(props.get(dav("displayname"), "")), _text_of(props.get(DESCRIPTION, ""))
