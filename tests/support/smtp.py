"""Test helpers: drive the SMTP server in-process (``StringTransport``, no sockets or reactor), and
read the mail store of a running ``TauDaemon`` (``DaemonStore``) for end-to-end checks."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ITLSTransport
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from tau.mail.smtp.service import ConnectionLimiter, SMTPFactory

if TYPE_CHECKING:
    from tau.registry import Registry


@implementer(ITLSTransport)
class TLSStringTransport(StringTransport):
    """A StringTransport that records ``startTLS`` (the bytes stay plain: the test reads them)."""

    tls_started = False
    tls_context: Any = None

    def startTLS(self, contextFactory: Any, normal: bool = True) -> None:
        self.tls_started = True
        self.tls_context = contextFactory


class FakeTLS:
    """Stands in for ``registry.tls`` in unit tests; STARTTLS only needs something to pass on."""


def make_factory(registry: Registry, store: Any, kind: str = "smtp", limiter: ConnectionLimiter | None = None,
                 **limits: Any) -> SMTPFactory:
    factory = SMTPFactory(registry, store, kind, limiter, tls=FakeTLS())
    for key, value in limits.items():
        setattr(factory, key, value)
    return factory


class Reply:
    def __init__(self, code: int, lines: list[str]) -> None:
        self.code = code
        self.lines = lines

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __repr__(self) -> str:
        return f"<{self.code} {self.text!r}>"


def parse_replies(data: bytes) -> list[Reply]:
    replies, lines = [], []
    for raw in data.split(b"\r\n"):
        if not raw:
            continue
        text = raw.decode("utf-8", "replace")
        lines.append(text[4:])
        if text[3:4] != "-":
            replies.append(Reply(int(text[:3]), lines))
            lines = []
    return replies


class Client:
    """One in-process connection: ``send`` bytes, get the replies they produced."""

    def __init__(self, factory: SMTPFactory, ip: str = "192.0.2.10", port: int = 40000) -> None:
        self.factory = factory
        self.transport = TLSStringTransport(peerAddress=IPv4Address("TCP", ip, port))
        self.protocol = factory.buildProtocol(self.transport.getPeer())
        self.protocol.makeConnection(self.transport)
        self.greeting = self.read()

    def read(self) -> list[Reply]:
        data = self.transport.value()
        self.transport.clear()
        return parse_replies(data)

    def send(self, data: bytes | str) -> list[Reply]:
        if isinstance(data, str):
            data = data.encode()
        self.protocol.dataReceived(data)
        return self.read()

    def cmd(self, line: bytes | str) -> Reply:
        """One command line; the last reply it produced (fails if none)."""
        if isinstance(line, str):
            line = line.encode()
        replies = self.send(line + b"\r\n")
        assert replies, f"no reply to {line!r}"
        return replies[-1]

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def disconnect(self) -> None:
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure

        self.protocol.connectionLost(Failure(ConnectionLost()))

    # -- conveniences

    def ehlo(self, name: str = "client.example") -> Reply:
        return self.cmd(f"EHLO {name}")

    def starttls(self) -> Reply:
        reply = self.cmd("STARTTLS")
        assert reply.code == 220, reply
        return self.ehlo()

    def login(self, user: str, password: str) -> Reply:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.cmd(f"AUTH PLAIN {token}")

    def submit_ready(self, user: str, password: str) -> None:
        """EHLO, STARTTLS, EHLO, AUTH PLAIN — what a mail client does on port 587."""
        self.ehlo()
        self.starttls()
        reply = self.login(user, password)
        assert reply.code == 235, reply

    def mail(self, sender: str, recipients: list[str], body: bytes, params: str = "") -> list[Reply]:
        """MAIL, RCPTs and DATA pipelined (RFC 2920), the body only after 354; every reply."""
        lines = [f"MAIL FROM:<{sender}>{(' ' + params) if params else ''}".encode()]
        lines += [f"RCPT TO:<{r}>".encode() for r in recipients]
        lines.append(b"DATA")
        replies = self.send(b"\r\n".join(lines) + b"\r\n")
        if not replies or replies[-1].code != 354:
            return replies
        return replies + self.send(dot_stuff(body) + b".\r\n")


def dot_stuff(body: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency, and a final CRLF."""
    stuffed = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in body.split(b"\r\n"))
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


def mail_store(registry: Registry) -> Any:
    return registry.mail_store


def mailbox_messages(store: Any, user: str, mailbox: str = "INBOX") -> list[bytes]:
    """The raw bytes of every message in ``user``'s ``mailbox``, in UID order (via the store API)."""
    from tests.support.harness import resolve

    info = resolve(store.get_mailbox(user, mailbox))
    if info is None:
        return []
    uids = resolve(store.uids(info.id))
    metas = resolve(store.fetch(info.id, uids)) if uids else []
    return [resolve(store.read(meta.blob_key)) for meta in metas]


def message(subject: str = "hello", body: str = "Hi there.\r\n", sender: str = "someone@remote.test",
            to: str = "alice@example.test") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@remote.test>\r\n"
            f"Date: Mon, 24 Nov 2025 10:00:00 +0000\r\n\r\n{body}").encode()


def strip_trace(raw: bytes) -> bytes:
    """``raw`` without the Return-Path/Received lines we prepend (they lead the header)."""
    lines = raw.split(b"\r\n")
    i = 0
    while i < len(lines) and (lines[i].startswith((b"Return-Path:", b"Received:", b"Authentication-Results:",
                                                   b"\t"))):
        i += 1
    return b"\r\n".join(lines[i:])


class DaemonStore:
    """The mail store of a running ``TauDaemon``'s data dir, read from the test process."""

    def __init__(self, daemon: Any) -> None:
        from tau.config import load_config
        from tau.registry import Registry
        from tau.storage.engines import create_engine
        from tests.support.harness import ImmediateDatabase, ThreadedMemoryReactorClock, immediate

        self.config = load_config(str(daemon.config), environ=daemon.env)
        self.registry = Registry(self.config, reactor=ThreadedMemoryReactorClock(), run_in_thread=immediate)
        db = ImmediateDatabase(create_engine(self.config.database_url))
        db.sync.keyring = self.registry.keyring
        self.registry.provide("db", db)
        self.store = mail_store(self.registry)

    def messages(self, user: str, mailbox: str = "INBOX") -> list[bytes]:
        return mailbox_messages(self.store, user, mailbox)

    def count(self, user: str, mailbox: str = "INBOX") -> int:
        from tests.support.harness import resolve

        info = resolve(self.store.get_mailbox(user, mailbox))
        return info.messages if info is not None else 0

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.registry.db.sync.run("test_query", lambda txn: txn.query(sql, params), readonly=True)

    @property
    def blob_root(self) -> Any:
        return self.registry.blob_backend.root

    def close(self) -> None:
        self.registry.db.close()
