"""SMTP command handlers (RFC 5321 §4.1.1), mixed into the protocol in ``server.py``.

Each ``smtp_VERB(arg)`` either replies at once, raises ``Reply``, or returns a coroutine the
protocol waits for before it reads the next command (pipelining, RFC 2920 §3.1).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from tau.auth.authenticator import LoginFailed, LoginThrottled
from tau.mail.smtp import auth, dsn_params
from tau.mail.smtp.delivery import Envelope
from tau.mail.smtp.syntax import Reply, parse_path, sanitize

log = Logger()
MAIL_PARAMS = {"SIZE", "BODY", "SMTPUTF8", "AUTH", "RET", "ENVID", "REQUIRETLS"}
RCPT_PARAMS = {"NOTIFY", "ORCPT"}                        # RFC 3461 (dsn_params.py)


class Commands:
    """The command set; state lives on the protocol (``server.SMTPServer``)."""

    # provided by server.SMTPServer / twisted.mail.smtp.ESMTP
    factory: Any
    transport: Any
    host: bytes
    ip: str
    user: Any
    submission: bool
    canStartTLS: bool
    startedTLS: bool
    ctx: Any
    _inbuf: bytearray
    _state: str
    _sasl: auth.SaslExchange | None
    _txn: Envelope | None
    _message: Any
    _helo_name: str | None
    _esmtp: bool
    _prev_crlf: bool
    _skip_line: bool
    _mid_line: bool

    if TYPE_CHECKING:
        def sendCode(self, code: int, message: bytes | str = b"") -> None: ...
        def listExtensions(self) -> bytes: ...
        def _close(self) -> None: ...
        def _require_session(self) -> None: ...
        def _begin_message(self) -> None: ...
        def _abort_transaction(self) -> None: ...
        def _reset_session(self) -> None: ...

    # -- session -------------------------------------------------------------------------------

    def extensions(self) -> dict[bytes, Any]:
        """EHLO keywords (RFC 5321 §4.1.1.1); AUTH only on submission once TLS is up (RFC 4954 §4)."""
        ext: dict[bytes, Any] = {
            b"PIPELINING": None,                                       # RFC 2920
            b"SIZE": [str(self.factory.max_size).encode()],            # RFC 1870
            b"8BITMIME": None,                                         # RFC 6152
            b"SMTPUTF8": None,                                         # RFC 6531
            b"ENHANCEDSTATUSCODES": None,                              # RFC 2034
            b"CHUNKING": None,                                         # RFC 3030
            b"DSN": None,                                              # RFC 3461
        }
        if self.canStartTLS and not self.startedTLS:
            ext[b"STARTTLS"] = None                                    # RFC 3207
        if self.startedTLS:
            ext[b"REQUIRETLS"] = None                                  # RFC 8689 §4: only over TLS
        if self.submission and self.startedTLS:
            ext[b"AUTH"] = list(auth.MECHANISMS)
        return ext

    def smtp_EHLO(self, rest: bytes) -> None:
        if not rest:
            raise Reply(501, "5.5.4 Syntax: EHLO hostname")
        self._abort_transaction()
        self._helo_name, self._esmtp = sanitize(rest), True
        self.sendCode(250, self.host + b" Hello [" + self.ip.encode() + b"]\n" + self.listExtensions())

    def smtp_HELO(self, rest: bytes) -> None:
        if not rest:
            raise Reply(501, "5.5.4 Syntax: HELO hostname")
        self._abort_transaction()
        self._helo_name, self._esmtp = sanitize(rest), False
        self.sendCode(250, self.host + b" Hello [" + self.ip.encode() + b"]")

    def smtp_NOOP(self, rest: bytes) -> None:
        self.sendCode(250, b"2.0.0 Ok")

    def smtp_RSET(self, rest: bytes) -> None:
        self._abort_transaction()
        self.sendCode(250, b"2.0.0 Ok")

    def smtp_QUIT(self, rest: bytes) -> None:
        self.sendCode(221, b"2.0.0 Bye")
        self._close()

    def smtp_VRFY(self, rest: bytes) -> None:
        # RFC 5321 §3.5.3: 252 instead of confirming which addresses exist
        self.sendCode(252, b"2.5.2 Cannot VRFY user, but will accept message and attempt delivery")

    def smtp_EXPN(self, rest: bytes) -> None:
        raise Reply(502, "5.5.1 EXPN not available")

    def smtp_HELP(self, rest: bytes) -> None:
        self.sendCode(214, b"2.0.0 See RFC 5321")

    # -- STARTTLS (RFC 3207) -------------------------------------------------------------------

    def smtp_STARTTLS(self, rest: bytes) -> None:
        if rest:
            raise Reply(501, "5.5.4 Syntax: STARTTLS")
        if self.startedTLS:
            raise Reply(503, "5.5.1 TLS already active")
        if not self.canStartTLS:
            raise Reply(454, "4.7.0 TLS not available")
        self.sendCode(220, b"2.0.0 Ready to start TLS")
        # §5 and CVE-2011-0411: nothing the client sent before the handshake may be acted on after it
        self._inbuf.clear()
        self.transport.startTLS(self.ctx)
        self.startedTLS = True
        self._reset_session()  # §4.2: forget EHLO and everything else learned in clear text

    # -- AUTH (RFC 4954) -----------------------------------------------------------------------

    def smtp_AUTH(self, rest: bytes) -> Any:
        if not self.submission:
            raise Reply(503, "5.5.1 AUTH not available on this port; use submission")
        if self._helo_name is None:
            raise Reply(503, "5.5.1 Send EHLO first")
        if not self.startedTLS:
            raise Reply(530, "5.7.0 Must issue a STARTTLS command first")
        if self.user is not None:
            raise Reply(503, "5.5.1 Already authenticated")
        if self._txn is not None:
            raise Reply(503, "5.5.1 AUTH not permitted during a mail transaction")
        mechanism, _, initial = rest.partition(b" ")
        self._sasl = auth.start(mechanism)
        if initial:
            return self._auth_step(initial)
        self._state = "auth"
        self.sendCode(334, auth.encode(self._sasl.challenge()))
        return None

    def _auth_step(self, line: bytes) -> Any:
        sasl = self._sasl
        assert sasl is not None
        try:
            sasl.respond(auth.decode(line))
        except Reply:
            self._state, self._sasl = "command", None
            raise
        if not sasl.done:
            self._state = "auth"
            self.sendCode(334, auth.encode(sasl.challenge()))
            return None
        self._state, self._sasl = "command", None
        return self._login(sasl.username, sasl.password)

    async def _login(self, username: str, password: str) -> None:
        registry = self.factory.registry
        logins = self.factory.metrics.logins
        try:
            user = await registry.authenticator.authenticate(username, password, self.ip)
        except LoginThrottled:
            logins.labels("smtp", "throttled").inc()
            log.warn("smtp auth throttled user={user} ip={ip}", user=sanitize(username), ip=self.ip)
            raise Reply(454, "4.7.0 Too many failed logins; try again later") from None
        except LoginFailed:
            logins.labels("smtp", "failed").inc()
            log.info("smtp auth failed user={user} ip={ip}", user=sanitize(username), ip=self.ip)
            raise Reply(535, "5.7.8 Authentication credentials invalid") from None
        logins.labels("smtp", "ok").inc()
        # the Sent copy needs a Sent folder: a user who never logged in anywhere has none yet
        await self.factory.store.ensure_defaults(user.address)
        self.user = user
        self.sendCode(235, b"2.7.0 Authentication successful")

    # -- the mail transaction --------------------------------------------------------------------

    async def smtp_MAIL(self, rest: bytes) -> None:
        self._require_session()
        if self._txn is not None:
            raise Reply(503, "5.5.1 Sender already specified")
        arg = parse_path(rest, b"FROM:", "5.1.7")
        size = body = None
        for key, value in arg.params.items():
            if key not in MAIL_PARAMS:
                raise Reply(555, f"5.5.4 Unsupported parameter {key}")
            if key == "SIZE":
                if value is None or not value.isdigit() or len(value) > 15:
                    raise Reply(501, "5.5.4 Bad SIZE parameter")
                size = int(value)
                if size > self.factory.max_size:
                    raise Reply(552, "5.3.4 Message size exceeds fixed maximum message size")
            elif key == "BODY":
                body = (value or "").upper()
                if body not in ("7BIT", "8BITMIME"):
                    raise Reply(555, "5.5.4 Unsupported BODY type")
            elif key in ("SMTPUTF8", "REQUIRETLS") and value is not None:
                raise Reply(501, f"5.5.4 {key} takes no value")
            elif key == "REQUIRETLS" and not self.startedTLS:
                raise Reply(530, "5.7.10 REQUIRETLS needs a TLS session")
        smtputf8 = "SMTPUTF8" in arg.params
        ret, envid = dsn_params.mail_params(arg.params)
        if arg.utf8 and not smtputf8:
            raise Reply(553, "5.6.7 Non-ASCII address requires SMTPUTF8")
        await self.factory.delivery.check_sender(self.user, arg.address)
        self._txn = Envelope(mail_from=arg.address, queue_id=os.urandom(6).hex().upper(), user=self.user,
                             smtputf8=smtputf8, body=body or "7BIT", declared_size=size, client_ip=self.ip,
                             helo=self._helo_name or "")
        self._txn.dsn.ret, self._txn.dsn.envid = ret, envid
        self._txn.require_tls = "REQUIRETLS" in arg.params
        self.sendCode(250, b"2.1.0 Ok")

    async def smtp_RCPT(self, rest: bytes) -> None:
        self._require_session()
        txn = self._txn
        if txn is None:
            raise Reply(503, "5.5.1 Need MAIL command")
        if self._message is not None:
            raise Reply(503, "5.5.1 Message transfer in progress")
        if len(txn.recipients) >= self.factory.max_recipients:
            raise Reply(452, "4.5.3 Too many recipients")          # RFC 5321 §4.5.3.1.10
        arg = parse_path(rest, b"TO:", "5.1.3")
        if not arg.address:
            raise Reply(501, "5.1.3 Bad recipient address syntax")
        unknown = [key for key in arg.params if key not in RCPT_PARAMS]
        if unknown:
            raise Reply(555, f"5.5.4 Unsupported parameter {unknown[0]}")
        wanted = dsn_params.rcpt_params(arg.params)
        if arg.utf8 and not txn.smtputf8:
            raise Reply(553, "5.6.7 Non-ASCII address requires SMTPUTF8")
        before = {*txn.local, *txn.remote}
        await self.factory.delivery.add_recipient(txn, arg.address)
        for target in (t for t in [*txn.local, *txn.remote] if t not in before):
            txn.dsn.rcpts[target] = wanted      # an alias's targets inherit what its RCPT asked for
        self.sendCode(250, b"2.1.5 Ok")

    def smtp_DATA(self, rest: bytes) -> None:
        if rest:
            raise Reply(501, "5.5.4 Syntax: DATA")
        if self._message is not None:
            raise Reply(503, "5.5.1 BDAT in progress; DATA not allowed")    # RFC 3030 §3
        self._begin_message()
        self._state, self._prev_crlf, self._skip_line, self._mid_line = "data", True, False, False
        self.sendCode(354, b"End data with <CR><LF>.<CR><LF>")
