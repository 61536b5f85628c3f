"""ManageSieve (RFC 5804) on ``[listen] managesieve``: scripts over a line protocol with literals.

Login is AUTHENTICATE PLAIN through the shared authenticator (app passwords and 2FA as for IMAP),
allowed only over TLS (STARTTLS) or from loopback, like IMAP's LOGINDISABLED. Commands run one at
a time per connection; input waits while one runs.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin

from tau.auth.authenticator import LoginFailed, LoginThrottled
from tau.mail.sieve.compile import EXTENSIONS, MAX_SCRIPT_BYTES, ScriptError
from tau.mail.sieve.interpret import MAX_REDIRECTS
from tau.mail.sieve.scripts import Scripts, SieveStoreError
from tau.mail.sieve.wire import WireError, quote, take_command

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
MAX_BUFFER = MAX_SCRIPT_BYTES + 8192
IDLE_TIMEOUT = 30 * 60            # seconds without a byte from the client (Dovecot: 30 minutes)


class Refused(Exception):
    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text, self.code = text, code


class ManageSieveFactory(ServerFactory):
    refusal = b'BYE "Too many connections from your address"\r\n'

    def __init__(self, registry: Registry, table: dict[str, Any]) -> None:
        self.registry = registry
        self.scripts = Scripts(registry)
        self.table = table          # tau.mail.sieve.commands.TABLE

    def buildProtocol(self, addr: Any) -> ManageSieveConnection:
        return ManageSieveConnection(self)


class ManageSieveConnection(TimeoutMixin, Protocol):
    def __init__(self, factory: ManageSieveFactory) -> None:
        self.factory = factory
        self.registry = factory.registry
        self.buf = bytearray()
        self.user: str | None = None
        self.tls = False
        self.loopback = False
        self.busy = False
        self.sasl_pending = False     # AUTHENTICATE "PLAIN" without an initial response: it comes next
        self.peer_ip = ""

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer_ip = getattr(peer, "host", "")
        try:
            self.loopback = ipaddress.ip_address(self.peer_ip).is_loopback
        except ValueError:
            self.loopback = False
        self.tls = ISSLTransport.providedBy(self.transport)
        self.callLater = self.registry.reactor.callLater
        self.setTimeout(IDLE_TIMEOUT)
        self.transport.write(self.capabilities() + b'OK "tau ManageSieve ready"\r\n')

    def capabilities(self) -> bytes:
        lines = [b'"IMPLEMENTATION" "tau"', b'"SIEVE" ' + quote(" ".join(EXTENSIONS)),
                 b'"MAXREDIRECTS" "%d"' % MAX_REDIRECTS, b'"VERSION" "1.0"']
        if self.tls or self.loopback:
            lines.insert(1, b'"SASL" "PLAIN"')
        else:
            lines.insert(1, b'"SASL" ""')
        if not self.tls and self._tls_available():
            lines.append(b'"STARTTLS"')
        if self.user is not None:
            lines.append(b'"OWNER" ' + quote(self.user))
        return b"\r\n".join(lines) + b"\r\n"

    def timeoutConnection(self) -> None:
        self.transport.write(b'BYE "Idle for too long"\r\n')
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)

    def _tls_available(self) -> bool:
        try:
            self.registry.tls.server_context_factory()
        except Exception:  # noqa: BLE001 - no certificate configured
            return False
        return True

    # -- input --------------------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.buf += data
        if len(self.buf) > MAX_BUFFER:
            self.transport.write(b'BYE "Command too long"\r\n')
            self.transport.loseConnection()
            return
        self._next()

    def _next(self) -> None:
        if self.busy or not self.buf:
            return
        sasl = self.sasl_pending
        prefix = b"SASL " if sasl else b""       # a SASL response is a string alone on its line
        try:
            parsed = take_command(prefix + bytes(self.buf), MAX_SCRIPT_BYTES)
        except WireError as exc:
            self.buf.clear()
            self.sasl_pending = False
            self.transport.write(b"NO " + quote(str(exc)) + b"\r\n")
            return
        if parsed is None:
            return
        name, args, used = parsed
        del self.buf[:used - len(prefix)]
        if sasl:
            self.sasl_pending = False
            name, args = "AUTHENTICATE", [b"PLAIN", *args]
        self.busy = True
        d = defer.Deferred.fromCoroutine(self._run(name, args))
        d.addErrback(lambda f: log.failure("managesieve command failed", f))
        d.addBoth(self._done)

    def _done(self, _: Any) -> None:
        self.busy = False
        if self.transport is not None and not getattr(self.transport, "disconnecting", False):
            self._next()

    async def _run(self, name: str, args: list[Any]) -> None:
        handler = self.factory.table.get(name)
        try:
            if handler is None:
                raise Refused(f"unknown command {name[:40]}")
            if handler.needs_auth and self.user is None:
                raise Refused("authenticate first")
            text = await handler.run(self, args)
        except Refused as refused:
            code = f"({refused.code}) " if refused.code else ""
            self.transport.write(b"NO " + code.encode() + quote(refused.text) + b"\r\n")
            return
        except SieveStoreError as exc:
            code = {"nonexistent": "NONEXISTENT", "active": "ACTIVE", "alreadyexists": "ALREADYEXISTS",
                    "quota": "QUOTA/MAXSCRIPTS"}.get(exc.code)
            self.transport.write(b"NO " + (f"({code}) ".encode() if code else b"") + quote(exc.message) + b"\r\n")
            return
        except ScriptError as exc:
            self.transport.write(b"NO " + quote(exc.text) + b"\r\n")
            return
        except Exception:
            log.failure("managesieve {command} failed", command=name)
            self.transport.write(b'NO (TRYLATER) "Server error; try again later"\r\n')
            return
        if text is not None:
            self.transport.write(b"OK " + quote(text) + b"\r\n")

    # -- login ----------------------------------------------------------------------------------------
    async def login_plain(self, response: bytes) -> None:
        if not (self.tls or self.loopback):
            raise Refused("use STARTTLS first", "ENCRYPT-NEEDED")
        try:
            authzid, authcid, password = base64.b64decode(response, validate=True).split(b"\0")
        except (binascii.Error, ValueError):
            raise Refused("invalid SASL PLAIN response") from None
        user = authcid.decode("utf-8", "replace")
        if authzid and authzid != authcid:
            raise Refused("proxy authorization is not supported", "AUTH-TOO-WEAK")
        try:
            account = await self.registry.authenticator.authenticate(user, password.decode("utf-8", "replace"),
                                                                     self.peer_ip)
        except LoginThrottled:
            raise Refused("too many failed logins, try again later", "TRYLATER") from None
        except LoginFailed:
            log.warn("managesieve_login_failed user={user} ip={ip}", user=user[:200], ip=self.peer_ip)
            raise Refused("authentication failed") from None
        self.user = account.address

    def start_tls(self) -> None:
        ctx = self.registry.tls.server_context_factory()
        self.transport.write(b'OK "Begin TLS negotiation now"\r\n')
        self.buf.clear()
        self.transport.startTLS(ctx)
        self.tls = True
        self.transport.write(self.capabilities() + b'OK "TLS active"\r\n')
