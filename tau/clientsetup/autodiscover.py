"""Microsoft Autodiscover, the "POX" (plain old XML) flavour Outlook and many phones ask for.

Request (``POST /autodiscover/autodiscover.xml``)::

    <Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
      <Request><EMailAddress>alice@example.org</EMailAddress>
        <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/
        responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>

The answer lists one ``<Protocol>`` per IMAP and SMTP listener (``Encryption`` SSL for implicit
TLS, TLS for STARTTLS), with the address as ``LoginName`` whether or not such a user exists.
A client that wants another schema (ActiveSync's ``mobilesync``) gets Autodiscover error 600,
after which it falls back to its other methods.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from tau.clientsetup.settings import ClientSettings, Server

RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


class BadRequest(ValueError):
    """The request body is not an Autodiscover request."""


def parse_request(body: bytes) -> tuple[str, str]:
    """``(email address, acceptable response schema)`` of a POX request body."""
    try:
        root = SafeET.fromstring(body)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise BadRequest(f"not XML: {exc}") from None
    found = {"EMailAddress": "", "AcceptableResponseSchema": ""}
    for node in root.iter():
        local = node.tag.rpartition("}")[2] if isinstance(node.tag, str) else ""
        if local in found and not found[local]:
            found[local] = (node.text or "").strip()
    return found["EMailAddress"], found["AcceptableResponseSchema"] or OUTLOOK_NS


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _protocol(account: ET.Element, kind: str, server: Server, address: str) -> None:
    node = ET.SubElement(account, "Protocol")
    _text(node, "Type", kind)
    _text(node, "Server", server.host)
    _text(node, "Port", str(server.port))
    _text(node, "DomainRequired", "off")
    _text(node, "LoginName", address)
    _text(node, "SPA", "off")
    _text(node, "SSL", "on")
    _text(node, "Encryption", "SSL" if server.tls == "SSL" else "TLS")
    _text(node, "AuthRequired", "on")
    if kind == "SMTP":
        _text(node, "UsePOPAuth", "on")
        _text(node, "SMTPLast", "off")


def _document(response: ET.Element) -> bytes:
    root = ET.Element("Autodiscover", {"xmlns": RESPONSE_NS})
    root.append(response)
    ET.indent(root)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode").encode() + b"\n"


def render(settings: ClientSettings, address: str) -> bytes:
    response = ET.Element("Response", {"xmlns": OUTLOOK_NS})
    account = ET.SubElement(response, "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    for server in settings.of("imap"):
        _protocol(account, "IMAP", server, address)
    for server in settings.of("smtp"):
        _protocol(account, "SMTP", server, address)
    return _document(response)


def render_error(code: str, message: str) -> bytes:
    response = ET.Element("Response")
    error = ET.SubElement(response, "Error", {"Id": "0"})
    _text(error, "ErrorCode", code)
    _text(error, "Message", message)
    ET.SubElement(error, "DebugData")
    return _document(response)
