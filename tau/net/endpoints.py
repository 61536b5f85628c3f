"""Listener endpoint strings (INTERFACE.md: ``[listen]`` values are Twisted endpoint descriptions).

``ssl:PORT`` without ``privateKey=`` means "TLS with the certificate from ``[tls]``": we listen on
plain TCP and wrap the factory in TLS with tau's reloadable context factory, so SIGHUP can swap
the certificate without rebinding. An ``ssl:`` string that names its own key is left to Twisted.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.protocols.tls import TLSMemoryBIOFactory


def is_tau_tls(desc: str) -> bool:
    """True for ``ssl:...`` strings that rely on tau's own certificate."""
    parts = desc.split(":")
    return parts[0] == "ssl" and not any(p.startswith(("privateKey=", "certKey=")) for p in parts[1:])


def _plain(desc: str) -> str:
    return "tcp:" + desc[len("ssl:"):] if is_tau_tls(desc) else desc


def validate_endpoint(desc: str) -> str | None:
    """A reason the description cannot listen, or None. Binds nothing."""
    parts = desc.split(":")
    if (parts[0] in ("tcp", "tcp6", "ssl") and len(parts) > 1 and parts[1].isdigit()
            and not 0 <= int(parts[1]) <= 65535):
        return f"bad endpoint {desc!r}: port out of range"
    try:
        _parse_only(_plain(desc))
    except (ValueError, TypeError, KeyError) as exc:
        return f"bad endpoint {desc!r}: {exc}"
    except Exception as exc:  # e.g. an ssl: key file that cannot be read
        return f"bad endpoint {desc!r}: {exc.__class__.__name__}: {exc}"
    return None


class _ParseOnly:
    """A reactor for parsing endpoint strings only: the parsers store it and nothing more."""


def _parse_only(desc: str) -> None:
    """Parse ``desc`` as serverFromString does, without listening. The stand-in reactor keeps
    twisted.internet.testing (32 modules, ~2.4 MiB) out of the daemon; a parser that does touch
    the reactor gets its MemoryReactor, as before."""
    try:
        serverFromString(_ParseOnly(), desc)
    except AttributeError:
        from twisted.internet.testing import MemoryReactor

        serverFromString(MemoryReactor(), desc)


def listen_endpoint(reactor: Any, desc: str) -> IStreamServerEndpoint:
    endpoint: IStreamServerEndpoint = serverFromString(reactor, _plain(desc))
    return endpoint


def wrap_factory(desc: str, factory: Any, tls_context: Any) -> Any:
    """Wrap ``factory`` in server-side TLS when ``desc`` asks for tau's certificate."""
    if is_tau_tls(desc):
        return TLSMemoryBIOFactory(tls_context, False, factory)
    return factory


def set_no_delay(transport: Any) -> None:
    """TCP_NODELAY on the socket under any TLS wrappers.

    Line protocols answer with small writes a few ms apart (pipelined SMTP replies, IMAP ``+`` and
    IDLE pushes); Nagle plus the client's delayed ACK would hold each second one back ~40 ms.
    """
    while transport is not None:
        setter = getattr(transport, "setTcpNoDelay", None)
        if setter is not None:
            try:
                setter(True)
            except OSError:
                pass
            return
        transport = getattr(transport, "transport", None)


def _fields(desc: str) -> list[str]:
    """``desc`` split on the colons Twisted splits on (a backslash escapes one, as in ``\\:\\:1``)."""
    out, current, escaped = [], "", False
    for char in desc:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            escaped = True
        elif char == ":":
            out.append(current)
            current = ""
        else:
            current += char
    out.append(current)
    return out


def endpoint_address(desc: str) -> tuple[str, int | None, str]:
    """``(kind, port, interface)`` of a listener description, e.g. ``("ssl", 993, "")`` for
    ``ssl:993`` and ``("tcp", 10143, "127.0.0.1")`` for ``tcp:10143:interface=127.0.0.1``; the
    port is None for kinds without one (``unix:``) or a description that names none."""
    parts = _fields(desc.strip())
    kind, port, interface = parts[0], None, ""
    positional = [p for p in parts[1:] if "=" not in p]
    named = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    text = named.get("port") or (positional[0] if positional else "")
    if kind in ("tcp", "tcp6", "ssl") and text.isdigit():
        port = int(text)
    interface = named.get("interface", positional[2] if kind == "tcp" and len(positional) > 2 else "")
    return kind, port, interface
