"""OAuth redirect URIs: a strict parse that agrees with browsers (WHATWG URL), and the match rules.

``urlsplit`` and a browser disagree on many inputs: ``http://evil.example:1234\\@127.0.0.1/cb`` has
host 127.0.0.1 for Python but evil.example for a browser (``\\`` is ``/`` in special URLs), and
``http:/\\evil``, ``HTTP://127.1``, tabs, ``%65vil`` hosts or ``0x7f.1`` are all rewritten by the
browser before it follows them. Instead of emulating every rewrite, this module accepts only a
small grammar on which both agree and refuses anything else: printable ASCII only, no ``\\``, no
userinfo, no fragment, a lowercase LDH host or a canonical IP literal, and the URI must equal its
canonical re-serialisation (lowercase scheme and host, no default port, a path that starts with
``/`` and has no dot segments). A URI that passes is followed by a browser exactly as written.

Match rules (RFC 6749 §3.1.2, RFC 8252 §7.3, OAuth 2.1 §2.3.1): a registered client's redirect URI
matches by string equality; a loopback redirect (``http://127.0.0.1:PORT/...``,
``http://[::1]:PORT/...``) is allowed with any port and path only for native public clients.
``localhost`` is not a loopback redirect (RFC 8252 §8.3: DNS may say otherwise).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_LENGTH = 2000
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")
DEFAULT_PORTS = {"http": 80, "https": 443}

_SHAPE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?]*)([^?]*)(?:\?(.*))?$", re.DOTALL)
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_PCHAR = r"A-Za-z0-9\-._~!$&'()*+,;=:@"
_PATH = re.compile(r"^(?:/(?:[" + _PCHAR + r"]|%[0-9A-Fa-f]{2})*)+$")
_QUERY = re.compile(r"^(?:[" + _PCHAR.replace("'", "") + r"/?]|%[0-9A-Fa-f]{2})+$")
_DOT_SEGMENT = re.compile(r"^(?:\.|%2e){1,2}$", re.IGNORECASE)
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$", re.IGNORECASE)


class RedirectError(ValueError):
    """The URI is not one tau will ever redirect to; ``reason`` says why (for logs and the CLI)."""


@dataclass(frozen=True)
class RedirectUri:
    uri: str
    scheme: str
    host: str  # an IPv6 literal keeps its brackets, as in the URI
    port: int | None
    path: str
    query: str | None

    @property
    def loopback(self) -> bool:
        """An RFC 8252 §7.3 loopback IP redirect (plain http to 127.0.0.1 or ::1)."""
        return self.scheme == "http" and self.host in LOOPBACK_HOSTS

    def serialise(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        query = "" if self.query is None else "?" + self.query
        return f"{self.scheme}://{self.host}{port}{self.path}{query}"


def parse(uri: str) -> RedirectUri:
    """The parsed URI, or RedirectError when it is not in the strict canonical form."""
    if not isinstance(uri, str) or not uri:
        raise RedirectError("the redirect URI is empty")
    if len(uri) > MAX_LENGTH:
        raise RedirectError("the redirect URI is too long")
    if any(not 0x21 <= ord(c) <= 0x7E for c in uri):
        raise RedirectError("the redirect URI has whitespace, control or non-ASCII characters")
    if "\\" in uri:
        raise RedirectError("the redirect URI has a backslash")
    if "#" in uri:
        raise RedirectError("the redirect URI has a fragment")
    m = _SHAPE.match(uri)
    if not m:
        raise RedirectError("the redirect URI is not scheme://host/path")
    scheme, authority, path, query = m.group(1).lower(), m.group(2), m.group(3), m.group(4)
    if "@" in authority:
        raise RedirectError("the redirect URI has userinfo ('@' before the host)")
    if scheme not in DEFAULT_PORTS:
        raise RedirectError("the redirect URI must use https (or http to a loopback address)")
    host, port = _host_port(authority, scheme)
    _check_path_query(path, query)
    parsed = RedirectUri(uri, scheme, host, port, path, query)
    if scheme == "http" and not parsed.loopback:
        raise RedirectError("plain http is allowed only to http://127.0.0.1 or http://[::1]")
    if parsed.serialise() != uri:
        raise RedirectError(f"the redirect URI is not in canonical form ({parsed.serialise()})")
    _cross_check(parsed)
    return parsed


def _host_port(authority: str, scheme: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        host, _, rest = authority.partition("]")
        host += "]"
        if rest and not rest.startswith(":"):
            raise RedirectError("the redirect URI's IPv6 host is malformed")
        port_text = rest[1:] if rest else None
        _check_ipv6(host)
    else:
        host, sep, port_text_raw = authority.partition(":")
        port_text = port_text_raw if sep else None
        _check_name(host)
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not port_text.isascii() or port_text != str(int(port_text)):
            raise RedirectError("the redirect URI's port is not a canonical number")
        port = int(port_text)
        if not 0 < port < 65536:
            raise RedirectError("the redirect URI's port is out of range")
        if port == DEFAULT_PORTS[scheme]:
            port = None  # a browser drops the default port: the serialisation check refuses it
    return host.lower(), port


def _check_ipv6(host: str) -> None:
    inner = host[1:-1]
    if not inner or "%" in inner or "." in inner:
        raise RedirectError("the redirect URI's IPv6 host is malformed or not canonical")
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError:
        raise RedirectError("the redirect URI's IPv6 host is malformed")
    if address.compressed != inner:
        raise RedirectError(f"the redirect URI's IPv6 host is not canonical ([{address.compressed}])")


def _check_name(host: str) -> None:
    if not host:
        raise RedirectError("the redirect URI has no host")
    if len(host) > 253:
        raise RedirectError("the redirect URI's host is too long")
    labels = host.lower().split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise RedirectError("the redirect URI's host must be letters, digits, '-' and dots (IDN as xn--)")
    if _NUMERIC_LABEL.match(labels[-1]):  # a browser reads it as an IPv4 address
        try:
            canonical = str(ipaddress.IPv4Address(host))
        except ValueError:
            raise RedirectError("the redirect URI's host looks like a non-canonical IPv4 address")
        if canonical != host:
            raise RedirectError("the redirect URI's host is not a canonical IPv4 address")


def _check_path_query(path: str, query: str | None) -> None:
    if not path.startswith("/"):
        raise RedirectError("the redirect URI needs a path starting with '/'")
    if not _PATH.match(path):
        raise RedirectError("the redirect URI's path has characters that must be percent-encoded")
    if any(_DOT_SEGMENT.match(segment) for segment in path.split("/")):
        raise RedirectError("the redirect URI's path has '.' or '..' segments")
    if query is not None and not _QUERY.match(query):
        raise RedirectError("the redirect URI's query is empty or has characters that must be percent-encoded")


def _cross_check(parsed: RedirectUri) -> None:
    """Defence in depth: Python's own parser must see the same host and port."""
    split = urlsplit(parsed.uri)
    host = parsed.host.strip("[]")
    if split.hostname != host or split.port != parsed.port or split.username is not None:
        raise RedirectError("the redirect URI is ambiguous")


def is_loopback(uri: str) -> bool:
    try:
        return parse(uri).loopback
    except RedirectError:
        return False


def allowed(uri: str, registered: Iterable[str], loopback_any_port: bool) -> bool:
    """May the code go to ``uri``? Exact match with a registered URI, or (native public clients
    only) any canonical loopback redirect. Both sides pass the same strict parse."""
    try:
        parsed = parse(uri)
    except RedirectError:
        return False
    if uri in set(registered):
        return True
    return loopback_any_port and parsed.loopback
