"""Drive the IMAP server in-process: bytes in through a ``StringTransport``, bytes out, no sockets.

With the ``tests.support.harness`` registry every database and thread call completes at once, so a
command's whole response is in the transport when ``send`` returns.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tau.mail.imap.service import IMAPFactory
from tests.support.harness import add_user, resolve

if TYPE_CHECKING:
    from tau.registry import Registry

_TAGGED = re.compile(rb"^([A-Za-z0-9.]+) (OK|NO|BAD)\b")


class Client:
    """One fake connection. ``cmd("a1 NOOP")`` returns the response lines (str, CRLF stripped)."""

    def __init__(self, factory: IMAPFactory, peer: str = "127.0.0.1") -> None:
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
        self.proto = factory.buildProtocol(None)
        self.proto.makeConnection(self.transport)
        self.greeting = self.output().decode()

    def output(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def send(self, data: bytes | str) -> bytes:
        """Feed raw input; everything the server wrote in response."""
        if isinstance(data, str):
            data = data.encode()
        self.proto.dataReceived(data)
        return self.output()

    def cmd(self, line: str | bytes) -> list[str]:
        raw = line.encode() if isinstance(line, str) else line
        return self.send(raw + b"\r\n").decode("utf-8").split("\r\n")[:-1]

    def ok(self, line: str | bytes) -> list[str]:
        """Run a command that must succeed; its untagged lines (tagged OK dropped)."""
        lines = self.cmd(line)
        tag = (line if isinstance(line, str) else line.decode()).split(" ", 1)[0]
        assert lines and lines[-1].startswith(f"{tag} OK"), lines
        return lines[:-1]

    def login(self, user: str, password: str = "secret-Pa55") -> None:
        self.ok(f'l0 LOGIN "{user}" "{password}"')

    def select(self, mailbox: str = "INBOX") -> list[str]:
        return self.ok(f'sel SELECT "{mailbox}"')

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)


class IMAPEnv:
    """A factory over an in-process registry plus helpers to make users and messages."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.factory = IMAPFactory(registry)
        self.store = self.factory.store

    def add_user(self, address: str, password: str = "secret-Pa55") -> str:
        add_user(self.registry, address, password)
        resolve(self.store.ensure_defaults(address))
        return address

    def client(self, user: str | None = None, peer: str = "127.0.0.1", mailbox: str | None = None,
               real_login: bool = False) -> Client:
        """A connection, logged in as ``user`` if given (skipping the ~100 ms argon2 check unless
        ``real_login``), with ``mailbox`` selected."""
        c = Client(self.factory, peer)
        if user:
            if real_login:
                c.login(user)
            else:
                c.proto.login_done(user)
            if mailbox:
                c.select(mailbox)
        return c

    def append(self, user: str, raw: bytes, mailbox: str = "INBOX", flags: tuple[str, ...] = (),
               internal_date: int | None = None, recent: bool = False) -> int:
        """Store a message as delivery would. Unless ``recent``, it is as if an earlier session
        had already seen it (its \\Recent claimed), so tests about other things need not mention
        \\Recent; tests/mail/test_imap_recent.py passes ``recent=True``."""
        done = resolve(self.store.append(user, mailbox, raw, flags, internal_date))
        if not recent:
            box = resolve(self.store.get_mailbox(user, done.mailbox))
            resolve(self.store.claim_recent(box.id, done.uid + 1))
        return done.uid


def message(n: int = 1, subject: str | None = None, body: str | None = None, sender: str = "bob@example.test",
            to: str = "alice@example.test") -> bytes:
    """A small RFC 5322 message with CRLF line ends."""
    subject = subject if subject is not None else f"Message {n}"
    body = body if body is not None else f"Hello number {n}.\r\nSecond line.\r\n"
    return (f"From: Bob <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <m{n}@example.test>\r\n"
            f"\r\n{body}").encode()


def tagged(lines: list[str], tag: str) -> str:
    """The tagged response line for ``tag``."""
    for line in lines:
        if line.startswith(tag + " "):
            return line
    raise AssertionError(f"no tagged response for {tag}: {lines}")
