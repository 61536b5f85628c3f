"""A small ESMTP client (RFC 5321 §4, RFC 3207 STARTTLS, RFC 2920 PIPELINING, RFC 4954 AUTH).

Why not ``twisted.mail.smtp.ESMTPSender``: it reads the message from a blocking file object and
reports one outcome per message, while the queue needs one outcome per recipient (RFC 5321
§3.3: RCPT replies differ), streams the message from the encrypted blob store a chunk at a time
(each chunk decrypted in a worker thread) and decides per MX whether TLS is required. This class
only speaks the protocol: ``command`` sends a line and returns the reply, every reply wait has a
timeout (RFC 5321 §4.5.3.2), and ``send_data`` applies dot-stuffing (§4.5.2).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from twisted.internet import defer, error
from twisted.internet.protocol import ClientFactory
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure


class SMTPTimeout(Exception):
    pass


class Reply:
    def __init__(self, code: int, lines: list[str]) -> None:
        self.code = code
        self.lines = lines

    @property
    def text(self) -> str:
        return " ".join(line for line in self.lines if line)

    def __str__(self) -> str:
        return f"{self.code} {self.text}"

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400


class ClientProtocol(LineOnlyReceiver):
    delimiter = b"\r\n"
    MAX_LENGTH = 65536

    def __init__(self, reactor: Any, timeout: float) -> None:
        self.reactor = reactor
        self.timeout = timeout
        self.connected_d: defer.Deferred[ClientProtocol] = defer.Deferred()
        self._waiting: deque[defer.Deferred[Reply]] = deque()
        self._ready: deque[Reply | Failure] = deque()
        self._lines: list[str] = []
        self._lost: Failure | None = None
        self.extensions: dict[str, str] = {}
        self.tls = False
        self.on_lost: Callable[[], None] | None = None     # set while parked (sessions.SessionCache)

    # -- connection ---------------------------------------------------------------------------

    def connectionMade(self) -> None:
        _no_delay(self.transport)
        self.connected_d.callback(self)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._lost = reason or Failure(error.ConnectionLost())
        while self._waiting:
            self._waiting.popleft().errback(self._lost)
        if self.on_lost is not None:
            self.on_lost()

    def peer_ip(self) -> str:
        """The IP address this session is connected to ("" once gone)."""
        peer = self.transport.getPeer() if self.transport is not None else None
        return str(getattr(peer, "host", "") or "")

    def tls_version(self) -> str:
        """``TLSv1.3`` and the like after STARTTLS, ``none`` for a plain session (for the logs)."""
        if not self.tls or self.transport is None:
            return "none"
        try:
            handle = self.transport.getHandle()
            return str(handle.get_protocol_version_name() or "unknown")
        except Exception:
            return "unknown"

    @property
    def alive(self) -> bool:
        """Connected, and no reply is pending or unread (a clean point between transactions)."""
        return self._lost is None and not self._waiting and not self._ready and not self._lines

    def lineLengthExceeded(self, line: bytes) -> None:
        self.transport.abortConnection()

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if len(text) < 3 or not text[:3].isdigit():
            self.transport.abortConnection()
            return
        self._lines.append(text[4:])
        if text[3:4] == "-":
            return
        reply = Reply(int(text[:3]), self._lines)
        self._lines = []
        if self._waiting:
            self._waiting.popleft().callback(reply)
        else:
            self._ready.append(reply)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()

    # -- replies ------------------------------------------------------------------------------

    def read_reply(self, timeout: float | None = None) -> defer.Deferred[Reply]:
        if self._ready:
            return defer.succeed(self._ready.popleft())  # type: ignore[arg-type]
        if self._lost is not None:
            return defer.fail(self._lost)
        d: defer.Deferred[Reply] = defer.Deferred()
        self._waiting.append(d)
        call = self.reactor.callLater(timeout or self.timeout, self._timed_out, d)
        d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d

    def _timed_out(self, d: defer.Deferred[Reply]) -> None:
        if d in self._waiting:
            self._waiting.remove(d)
            d.errback(SMTPTimeout("no reply in time"))
            self.abort()

    def send_line(self, line: str) -> None:
        self.transport.write(line.encode("utf-8") + b"\r\n")

    async def command(self, line: str, timeout: float | None = None) -> Reply:
        self.send_line(line)
        return await self.read_reply(timeout)

    # -- session ------------------------------------------------------------------------------

    async def ehlo(self, name: str) -> Reply:
        reply = await self.command(f"EHLO {name}")
        if reply.code == 250:
            self.extensions = {}
            for line in reply.lines[1:]:
                keyword, _, params = line.partition(" ")
                self.extensions[keyword.upper()] = params
            return reply
        reply = await self.command(f"HELO {name}")
        self.extensions = {}
        return reply

    async def starttls(self, context: Any) -> Reply:
        reply = await self.command("STARTTLS")
        if reply.code == 220:
            self.transport.startTLS(context)
            self.tls = True
        return reply

    async def send_data(self, chunks: AsyncIterator[bytes], data_timeout: float) -> Reply:
        """Stream the message after a 354 with dot-stuffing; the final reply (§4.1.1.4)."""
        carry = b""
        at_line_start = True
        last = b"\r\n"
        async for chunk in chunks:
            if self._lost is not None:
                break
            buf = carry + chunk
            cut = buf.rfind(b"\r\n")
            if cut < 0:
                carry = buf
                continue
            ready, carry = buf[:cut + 2], buf[cut + 2:]
            self.transport.write(_stuff(ready, at_line_start))
            at_line_start = True
            last = ready[-2:]
        if carry:
            self.transport.write(_stuff(carry, at_line_start) + b"\r\n")
        elif last != b"\r\n":
            self.transport.write(b"\r\n")
        self.transport.write(b".\r\n")
        return await self.read_reply(data_timeout)

    async def quit(self) -> None:
        try:
            if self._lost is None:
                self.send_line("QUIT")
                await self.read_reply(5)
        except Exception:
            pass
        if self.transport is not None:
            self.transport.loseConnection()


def _stuff(data: bytes, at_line_start: bool) -> bytes:
    out = data.replace(b"\r\n.", b"\r\n..")
    if at_line_start and out.startswith(b"."):
        out = b"." + out
    return out


class _Factory(ClientFactory):
    noisy = False

    def __init__(self, reactor: Any, timeout: float) -> None:
        self.reactor = reactor
        self.timeout = timeout
        self.done: defer.Deferred[ClientProtocol] = defer.Deferred()

    def buildProtocol(self, addr: Any) -> ClientProtocol:
        proto = ClientProtocol(self.reactor, self.timeout)
        proto.connected_d.addCallback(lambda p: self.done.called or self.done.callback(p))
        return proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self.done.called:
            self.done.errback(reason)


async def connect(reactor: Any, host: str, port: int, connect_timeout: float, timeout: float) -> ClientProtocol:
    """A connected client (TCP only; the caller reads the §4.3.1 greeting)."""
    factory = _Factory(reactor, timeout)
    reactor.connectTCP(host, port, factory, timeout=connect_timeout)
    return await factory.done


def _no_delay(transport: Any) -> None:
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        try:
            set_no_delay(True)
        except OSError:
            pass
