"""The ManageSieve commands (RFC 5804 §2): each returns the text of its OK, or raises ``Refused``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tau.mail.sieve.managesieve import ManageSieveConnection, Refused
from tau.mail.sieve.wire import quote


@dataclass(frozen=True)
class Handler:
    run: Callable[[ManageSieveConnection, list[Any]], Awaitable[str | None]]
    needs_auth: bool


def _strings(args: list[Any], count: int) -> list[str]:
    if len(args) != count or not all(isinstance(a, bytes) for a in args):
        raise Refused(f"expected {count} string argument{'s' if count != 1 else ''}")
    try:
        return [a.decode("utf-8") for a in args]
    except UnicodeDecodeError:
        raise Refused("strings must be UTF-8") from None


async def capability(conn: ManageSieveConnection, args: list[Any]) -> str:
    conn.transport.write(conn.capabilities())
    return "CAPABILITY completed"


async def noop(conn: ManageSieveConnection, args: list[Any]) -> str:
    return "NOOP completed"


async def logout(conn: ManageSieveConnection, args: list[Any]) -> None:
    conn.transport.write(b'OK "Logout completed"\r\n')
    conn.transport.loseConnection()


async def starttls(conn: ManageSieveConnection, args: list[Any]) -> None:
    if conn.tls:
        raise Refused("TLS is already active")
    if conn.user is not None:
        raise Refused("STARTTLS is only allowed before AUTHENTICATE")
    if not conn._tls_available():
        raise Refused("TLS not available")
    conn.start_tls()


async def authenticate(conn: ManageSieveConnection, args: list[Any]) -> str | None:
    if conn.user is not None:
        raise Refused("already authenticated")
    if not args or not isinstance(args[0], bytes) or args[0].upper() != b"PLAIN":
        raise Refused("unsupported mechanism (PLAIN only)")
    if len(args) == 1:                       # RFC 5804 §2.1: an empty challenge, the response follows
        if not (conn.tls or conn.loopback):
            raise Refused("use STARTTLS first", "ENCRYPT-NEEDED")
        conn.sasl_pending = True
        conn.transport.write(b'""\r\n')
        return None
    if len(args) != 2 or not isinstance(args[1], bytes):
        raise Refused("PLAIN takes one response")
    await conn.login_plain(args[1].strip())
    return "Authenticated"


async def listscripts(conn: ManageSieveConnection, args: list[Any]) -> str:
    assert conn.user is not None
    for name, active in await conn.factory.scripts.list(conn.user):
        conn.transport.write(quote(name) + (b" ACTIVE" if active else b"") + b"\r\n")
    return "Listscripts completed"


async def getscript(conn: ManageSieveConnection, args: list[Any]) -> str:
    assert conn.user is not None
    [name] = _strings(args, 1)
    script = await conn.factory.scripts.get(conn.user, name)
    data = script.content.encode("utf-8")
    conn.transport.write(b"{%d}\r\n%s\r\n" % (len(data), data))
    return "Getscript completed"


async def putscript(conn: ManageSieveConnection, args: list[Any]) -> str:
    assert conn.user is not None
    name, content = _strings(args, 2)
    await conn.factory.scripts.put(conn.user, name, content)
    return "Putscript completed"


async def checkscript(conn: ManageSieveConnection, args: list[Any]) -> str:
    [content] = _strings(args, 1)
    await conn.registry.run_in_thread(conn.factory.scripts.check, content)
    return "Script is valid"


async def setactive(conn: ManageSieveConnection, args: list[Any]) -> str:
    assert conn.user is not None
    [name] = _strings(args, 1)
    await conn.factory.scripts.set_active(conn.user, name)
    return "Setactive completed"


async def deletescript(conn: ManageSieveConnection, args: list[Any]) -> str:
    assert conn.user is not None
    [name] = _strings(args, 1)
    await conn.factory.scripts.delete(conn.user, name)
    return "Deletescript completed"


async def renamescript(conn: ManageSieveConnection, args: list[Any]) -> str:
    assert conn.user is not None
    old, new = _strings(args, 2)
    await conn.factory.scripts.rename(conn.user, old, new)
    return "Renamescript completed"


async def havespace(conn: ManageSieveConnection, args: list[Any]) -> str:
    assert conn.user is not None
    if len(args) != 2 or not isinstance(args[0], bytes) or not isinstance(args[1], int):
        raise Refused("HAVESPACE needs a name and a size")
    problem = await conn.factory.scripts.space_error(conn.user, args[0].decode("utf-8", "replace"), args[1])
    if problem is not None:
        raise Refused(problem, "QUOTA/MAXSIZE")
    return "Putscript would succeed"


TABLE: dict[str, Handler] = {
    "CAPABILITY": Handler(capability, False), "NOOP": Handler(noop, False), "LOGOUT": Handler(logout, False),
    "STARTTLS": Handler(starttls, False), "AUTHENTICATE": Handler(authenticate, False),
    "LISTSCRIPTS": Handler(listscripts, True), "GETSCRIPT": Handler(getscript, True),
    "PUTSCRIPT": Handler(putscript, True), "CHECKSCRIPT": Handler(checkscript, True),
    "SETACTIVE": Handler(setactive, True), "DELETESCRIPT": Handler(deletescript, True),
    "RENAMESCRIPT": Handler(renamescript, True), "HAVESPACE": Handler(havespace, True),
}
