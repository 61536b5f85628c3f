"""Thunderbird autoconfig (``config-v1.1.xml``, the format of Mozilla's ISPDB) for one domain.

Thunderbird asks ``https://autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=ADDR`` and
``https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml``; since version 102 it also reads
``<addressBook type="carddav">`` and ``<calendar type="caldav">``. The username is the
placeholder ``%EMAILADDRESS%``: the answer names no account, so it cannot tell whether one exists.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from tau.clientsetup.settings import ClientSettings, Server


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _server(parent: ET.Element, tag: str, kind: str, server: Server) -> None:
    node = ET.SubElement(parent, tag, {"type": kind})
    _text(node, "hostname", server.host)
    _text(node, "port", str(server.port))
    _text(node, "socketType", server.tls)
    _text(node, "authentication", "password-cleartext")
    _text(node, "username", "%EMAILADDRESS%")


def _dav(parent: ET.Element, tag: str, kind: str, url: str) -> None:
    node = ET.SubElement(parent, tag, {"type": kind})
    _text(node, "username", "%EMAILADDRESS%")
    _text(node, "authentication", "http-basic")
    _text(node, "serverURL", url)


def render(settings: ClientSettings, domain: str, dav: dict[str, bool]) -> bytes:
    """``dav``: which of ``caldav``/``carddav`` this tau serves."""
    root = ET.Element("clientConfig", {"version": "1.1"})
    provider = ET.SubElement(root, "emailProvider", {"id": domain})
    _text(provider, "domain", domain)
    _text(provider, "displayName", f"{domain} (tau on {settings.hostname})")
    _text(provider, "displayShortName", domain)
    for server in settings.of("imap"):
        _server(provider, "incomingServer", "imap", server)
    for server in settings.of("smtp"):
        _server(provider, "outgoingServer", "smtp", server)
    for server in settings.of("managesieve"):  # not in Thunderbird's format: its sieve add-ons read it
        _server(provider, "incomingServer", "managesieve", server)
    if dav.get("carddav"):
        _dav(root, "addressBook", "carddav", settings.dav_url)
    if dav.get("caldav"):
        _dav(root, "calendar", "caldav", settings.dav_url)
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode").encode() + b"\n"
