"""Hardened XML in, fast XML out (RFC 4918 §14, §13).

Request bodies are parsed by defusedxml: no DTDs, no entity declarations, no external
references (billion laughs, XXE and network access are refused before any expansion). Bodies
are bounded by the body sink (``MAX_BODY``) before they get here. Responses are written as
strings: a 1,000-member multistatus is the hot path, and ElementTree would build it 3x slower.
Names are Clark notation (``{DAV:}getetag``; a property in no namespace is plain ``foo``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import lru_cache
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from tau.dav.errors import DavError, status_line

DAV = "DAV:"
MAX_BODY = 1024 * 1024  # XML request bodies; larger ones are refused with 413
MAX_DEPTH = 100         # element nesting; deeper bodies are refused with 400 (ElementTree recurses)
Element = ET.Element


def dav(local: str) -> str:
    return "{DAV:}" + local


def split_name(name: str) -> tuple[str, str]:
    """``{ns}local`` → (ns, local); ``local`` → ("", local)."""
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


def parse_body(body: bytes, expect: str | None = None) -> ET.Element | None:
    """The root element of an XML body (None when empty); 400 for anything malformed or hostile."""
    if not body.strip():
        return None
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise DavError(400, f"forbidden XML construct: {exc.__class__.__name__}")
    except (ET.ParseError, ValueError, UnicodeDecodeError, LookupError) as exc:  # LookupError: encoding="utf-9"
        raise DavError(400, f"malformed XML body: {exc}")
    if _too_deep(root):
        raise DavError(400, f"XML body nested deeper than {MAX_DEPTH} elements")
    if expect is not None and root.tag != expect:
        raise DavError(400, f"expected {expect} as the root element, got {root.tag}")
    return root


def _too_deep(root: ET.Element) -> bool:
    """Iteratively (a recursive walk is what fails): is any element deeper than MAX_DEPTH?"""
    stack = [(root, 1)]
    while stack:
        elem, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in elem)
    return False


def element_to_xml(elem: ET.Element) -> str:
    """An element as a self-contained fragment (its namespaces declared on itself)."""
    return ET.tostring(elem, encoding="unicode", short_empty_elements=True)


@lru_cache(maxsize=4096)
def _tags(name: str) -> tuple[str, str, str]:
    """(open, close, empty) tags of a property: ``D`` for DAV names, ``x`` bound on the element else."""
    ns, local = split_name(name)
    if ns == DAV:
        return f"<D:{local}>", f"</D:{local}>", f"<D:{local}/>"
    if not ns:
        return f"<{local}>", f"</{local}>", f"<{local}/>"
    decl = f"x:{local} xmlns:x={quoteattr(ns)}"
    return f"<{decl}>", f"</x:{local}>", f"<{decl}/>"


def empty_element(name: str) -> str:
    """``<D:getetag/>`` for DAV names, ``<x:foo xmlns:x="ns"/>`` otherwise."""
    return _tags(name)[2]


def prop_element(name: str, inner: str) -> str:
    """A property element with already-escaped inner XML (``D`` is bound to ``DAV:`` at the root)."""
    open_tag, close_tag, _ = _tags(name)
    return open_tag + inner + close_tag


def text(value: str) -> str:
    return escape(value)


def href(path: str) -> str:
    return f"<D:href>{escape(path)}</D:href>"


@lru_cache(maxsize=64)
def _status(code: int) -> str:
    return status_line(code)


class Multistatus:
    """Builds a ``207 Multi-Status`` body response by response (RFC 4918 §13)."""

    def __init__(self) -> None:
        self.parts: list[str] = ['<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">']

    def propstat(self, path: str, groups: dict[int, list[str]]) -> None:
        """One response with a propstat per status: ``{200: [prop xml...], 404: [...]}``."""
        out = ["<D:response><D:href>", escape(path), "</D:href>"]
        for code, props in groups.items():
            if props:
                out += ("<D:propstat><D:prop>", *props, "</D:prop><D:status>", _status(code),
                        "</D:status></D:propstat>")
        if len(out) == 3:  # nothing to show: an empty 200 propstat
            out.append("<D:propstat><D:prop></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>")
        out.append("</D:response>")
        self.parts.append("".join(out))

    def status(self, path: str, code: int, error: str | None = None) -> None:
        """One response carrying only a status (and optionally a ``DAV:error`` condition)."""
        err = f"<D:error>{error}</D:error>" if error else ""
        self.parts.append(f"<D:response>{href(path)}<D:status>{status_line(code)}</D:status>{err}</D:response>")

    def raw(self, fragment: str) -> None:
        self.parts.append(fragment)

    def render(self) -> bytes:
        return ("".join(self.parts) + "</D:multistatus>").encode("utf-8")
