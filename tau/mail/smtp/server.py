"""The ESMTP server protocol (RFC 5321) with tau's extensions, limits and error counting.

Built on ``twisted.mail.smtp.ESMTP`` (greeting, reply formatting, the timeout mixin, STARTTLS
plumbing), but framing and the mail transaction are our own, because Twisted's:
- processes pipelined commands while an earlier one still waits on the database, so a
  ``MAIL``/``RCPT``/``DATA`` burst (RFC 2920) races; here each command finishes before the next
  line is looked at, and reading pauses while a command is pending with a full buffer;
- splits lines on CRLF only (a bare-LF message becomes one over-long line) and has no BDAT;
- creates one ``IMessage`` per recipient, while the store takes one blob for all of them.

End of data is only ``CRLF . CRLF``: a bare-LF ``.`` line is content, not a terminator, which
closes the "SMTP smuggling" hole (CVE-2023-51766 family). Bare LFs and NULs inside a message
are accepted and line ends are stored as CRLF.

Message lines may be as long as the message (``[limits] message_size``), as Postfix accepts them:
the bytes are stored as received (after dot-unstuffing), a long line streamed into the blob in
``PARTIAL_LINE`` pieces. Command lines keep the RFC 5321 §4.5.3.1.4 limit of 512 octets.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.mail.smtp import ESMTP
from twisted.python.failure import Failure

from tau.mail.smtp import auth
from tau.mail.smtp.commands import Commands
from tau.mail.smtp.delivery import Envelope
from tau.mail.smtp.message import IncomingMessage, trace_headers
from tau.mail.smtp.rejects import reject_reason
from tau.mail.smtp.syntax import Reply
from tau.net.endpoints import set_no_delay
from tau.net.slow import SlowSender
from tau.storage.faults import is_unavailable

log = Logger()

COMMAND_LIMIT = 512          # RFC 5321 §4.5.3.1.4, CRLF included
AUTH_LINE_LIMIT = 12288      # RFC 4954 §4: AUTH lines may be longer
PARTIAL_LINE = 64 * 1024     # DATA: an unfinished line this long is stored in pieces
BUFFER_PAUSE = 256 * 1024    # stop reading while a command is pending and this much is queued
_VERB = re.compile(rb"[A-Za-z]{1,16}")
_BDAT = re.compile(rb"(\d{1,10})(?: +(LAST))? *", re.I)


class SMTPServer(Commands, ESMTP):
    """One client connection; settings (limits, policy, TLS) come from ``factory``."""

    def __init__(self, factory: Any) -> None:
        super().__init__(chal={}, contextFactory=factory.tls)
        self.factory = factory
        self.host = factory.hostname.encode("idna")
        self.timeout = factory.timeout
        self.callLater = factory.registry.reactor.callLater   # TimeoutMixin: the registry's clock
        self.submission: bool = factory.submission
        self.user: Any = None
        self.ip = "unknown"
        self._inbuf = bytearray()
        self._state = "command"                     # "command" | "data" | "auth"
        self._busy = False
        self._pumping = False
        self._paused = False
        self._closing = False
        self._counted = False
        self._acquired = False
        self._errors = 0
        self._helo_name: str | None = None
        self._esmtp = False
        self._txn: Envelope | None = None
        self._message: IncomingMessage | None = None
        self._sasl: auth.SaslExchange | None = None
        self._skip_line = False                     # discarding the rest of an over-long line
        self._prev_crlf = True                      # DATA: was the last line ended by CRLF
        self._mid_line = False                      # DATA: part of the current line was passed on
        self._bdat_left = 0
        self._bdat_last = False
        self._bdat_error: Reply | None = None
        self._bdat_cr = False
        self._slow = SlowSender(factory.registry.reactor, self._too_slow)

    # -- connection ----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.ip = str(getattr(peer, "host", peer))
        self.factory.metrics.connections.labels("smtp").inc()
        self._counted = True
        limiter = self.factory.limiter
        if limiter is not None and not limiter.acquire(self.ip):
            self.sendCode(421, b"4.7.0 Too many connections from your address; try again later")
            self._close()
            return
        self._acquired = limiter is not None
        set_no_delay(self.transport)
        if self.factory.implicit_tls:
            self.startedTLS = True
        super().connectionMade()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.setTimeout(None)
        self._slow.stop()
        if self._message is not None:
            self._message.abort()
            self._message = None
        if self._counted:
            self._counted = False
            self.factory.metrics.connections.labels("smtp").dec()
        if self._acquired:
            self._acquired = False
            self.factory.limiter.release(self.ip)

    def greeting(self) -> bytes:
        return self.host + b" ESMTP tau"

    def timeoutConnection(self) -> None:
        """RFC 5321 §4.5.3.2: the server may close an idle session, saying why."""
        self.sendCode(421, b"4.4.2 " + self.host + b" Error: timeout exceeded")
        self._close()

    def _too_slow(self, what: str) -> None:
        """A line or a message took longer than ``[limits] line_timeout``/``data_timeout``."""
        log.info("smtp closing {ip}: {what} not received in time", ip=self.ip, what=what)
        self.timeoutConnection()

    def _watch(self) -> None:
        """Tell the slow-sender deadlines whether a partial line and a message are under way."""
        if self._closing:
            return
        factory = self.factory
        partial = (bool(self._inbuf) or self._skip_line) and not self._bdat_left and not self._busy
        self._slow.line(factory.line_timeout if partial else None)
        self._slow.phase(factory.data_timeout if self._message is not None else None)

    def _close(self) -> None:
        self._closing = True
        self._inbuf.clear()
        self.transport.loseConnection()

    def sendCode(self, code: int, message: bytes | str = b"") -> None:
        """Every 4xx/5xx counts against the connection; at ``max_errors`` we say 421 and hang up."""
        if isinstance(message, str):
            message = message.encode("utf-8", "replace")
        super().sendCode(code, message)
        if code >= 400:
            reason = reject_reason(code, message.decode("utf-8", "replace"))
            if reason is not None:
                self.factory.metrics.mail_rejected.labels(reason).inc()
        if code >= 400 and code != 421 and not self._closing:
            self.factory.metrics.errors.labels("smtp", str(code)).inc()
            self._errors += 1
            if self._errors >= self.factory.max_errors:
                log.info("smtp closing {ip}: too many errors", ip=self.ip)
                super().sendCode(421, b"4.7.0 Too many errors; closing connection")
                self._close()

    def _reply(self, reply: Reply) -> None:
        self.sendCode(reply.code, reply.line())

    # -- input framing -------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self.resetTimeout()
        self._inbuf += data
        self._pump()

    def _pump(self) -> None:
        """Consume buffered input until it runs out, a command is pending, or we close."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._inbuf and not self._busy and not self._closing:
                if self._bdat_left:
                    self._bdat_step()
                elif self._state == "data":
                    if not self._data_step():
                        break
                elif not self._line_step():
                    break
        finally:
            self._pumping = False
        self._flow()
        self._watch()

    def _flow(self) -> None:
        """Back-pressure: stop reading from the socket while we cannot keep up."""
        want_pause = self._busy and len(self._inbuf) > BUFFER_PAUSE and not self._closing
        if want_pause != self._paused and self.transport is not None:
            self._paused = want_pause
            (self.transport.pauseProducing if want_pause else self.transport.resumeProducing)()

    def _run(self, work: Any) -> None:
        """Wait for a command's Deferred/coroutine before reading the next line (RFC 2920 order)."""
        d = work if isinstance(work, Deferred) else Deferred.fromCoroutine(work)
        self._busy = True
        d.addBoth(self._finished)

    def _finished(self, result: Any) -> None:
        self._busy = False
        if isinstance(result, Failure):
            if result.check(Reply):
                self._reply(result.value)
            elif is_unavailable(result.value):  # an outage to wait out: nothing was accepted
                log.warn("smtp command: storage unavailable ({error})", error=str(result.value)[:200])
                self.sendCode(451, b"4.3.0 Temporarily unavailable; try again later")
            else:
                log.failure("smtp command failed", failure=result)
                self.sendCode(451, b"4.3.0 Local error in processing; try again later")
        if not self._pumping:
            self._pump()

    def _line_step(self) -> bool:
        """One command (or AUTH response) line; False when no complete line is buffered."""
        idx = self._inbuf.find(b"\n")
        if idx < 0:
            if len(self._inbuf) > AUTH_LINE_LIMIT:
                self._inbuf.clear()
                if not self._skip_line:
                    self._skip_line = True
                    self._state, self._sasl = "command", None
                    self.sendCode(500, b"5.5.2 Line too long")
            return False
        line = bytes(self._inbuf[:idx]).rstrip(b"\r")
        del self._inbuf[: idx + 1]
        self._slow.line_done()
        if self._skip_line:
            self._skip_line = False
            return True
        if self._state == "auth":
            self._dispatch(self._auth_step, line)
        elif len(line) + 2 > COMMAND_LIMIT and line[:5].upper() != b"AUTH ":
            self.sendCode(500, b"5.5.2 Line too long")
        else:
            self._command(line)
        return True

    def _command(self, line: bytes) -> None:
        verb, _, rest = line.strip(b" \t").partition(b" ")
        if not _VERB.fullmatch(verb) or b"\0" in line:
            self.sendCode(500, b"5.5.2 Syntax error, command unrecognized")
            return
        handler = getattr(self, "smtp_" + verb.decode("ascii").upper(), None)
        if handler is None:
            self.sendCode(500, b"5.5.2 Syntax error, command unrecognized")
            return
        self._dispatch(handler, rest.strip(b" \t"))

    def _dispatch(self, handler: Any, arg: bytes) -> None:
        try:
            result = handler(arg)
        except Reply as reply:
            self._reply(reply)
            return
        if inspect.iscoroutine(result) or isinstance(result, Deferred):
            self._run(result)

    # -- DATA (RFC 5321 §4.1.1.4, §4.5.2) ------------------------------------------------------

    def _data_step(self) -> bool:
        """Message lines up to the last complete one; a line of any length (RFC 5321 §4.5.3.1.6
        sets 1000 as what a server must at least accept, real newsletters send more): an unfinished
        line over ``PARTIAL_LINE`` is passed on in pieces, so memory stays bounded."""
        buf = self._inbuf
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) < PARTIAL_LINE:
                return False
            self._partial_line()
            return True
        chunk = bytes(buf[: end + 1])
        del buf[: end + 1]
        self._slow.line_done()
        lines = chunk.split(b"\n")
        lines.pop()
        out: list[bytes] = []
        for i, line in enumerate(lines):
            crlf = line[-1:] == b"\r"
            if crlf:
                line = line[:-1]
            if self._mid_line:                              # the rest of a line passed on in pieces
                self._mid_line = False
            elif line[:1] == b".":
                if line == b"." and crlf and self._prev_crlf:
                    if i + 1 < len(lines):                  # pipelined commands after the message
                        buf[:0] = b"\n".join(lines[i + 1:]) + b"\n"
                    self._end_of_data(self._feed(out))
                    return True
                if len(line) > 1:
                    line = line[1:]                         # transparency: ".." → "."
            out.append(line)
            self._prev_crlf = crlf
        pending = self._feed(out)
        if pending is not None:
            self._run(pending)
        return True

    def _partial_line(self) -> None:
        """Pass on the start of a long line (a trailing CR may be half of the CRLF: kept back)."""
        buf = self._inbuf
        take = len(buf) - (1 if buf[-1:] == b"\r" else 0)
        piece = bytes(buf[:take])
        del buf[:take]
        self._slow.line_done()
        if not self._mid_line and piece[:1] == b".":
            piece = piece[1:]                               # too long to be the terminator
        self._mid_line = True
        if self._message is not None:
            pending = self._message.write(piece)
            if pending is not None:
                self._run(pending)

    def _feed(self, lines: list[bytes]) -> Deferred[Any] | None:
        if not lines or self._message is None:
            return None
        lines.append(b"")
        return self._message.write(b"\r\n".join(lines))

    def _end_of_data(self, pending: Deferred[Any] | None) -> None:
        self._state = "command"
        message, self._message, self._txn = self._message, None, None
        self._run(self._complete(message, pending))

    async def _complete(self, message: IncomingMessage | None, pending: Deferred[Any] | None) -> None:
        if pending is not None:
            await pending
        if message is None:
            raise Reply(503, "5.5.1 No mail transaction")
        reply = await message.finish()
        self._reply(reply)

    # -- BDAT (RFC 3030) -----------------------------------------------------------------------

    def smtp_BDAT(self, rest: bytes) -> None:
        m = _BDAT.fullmatch(rest)
        if m is None:
            # the chunk length is unknown, so the stream cannot be resynchronised
            self.sendCode(501, b"5.5.4 Syntax: BDAT size [LAST]")
            self._close()
            return
        self._bdat_left, self._bdat_last, self._bdat_error = int(m.group(1)), bool(m.group(2)), None
        try:
            if self._message is None:
                self._begin_message()
        except Reply as reply:
            self._bdat_error = reply
        if self._bdat_left == 0:
            self._bdat_done()

    def _bdat_step(self) -> None:
        take = min(self._bdat_left, len(self._inbuf))
        data = bytes(self._inbuf[:take])
        del self._inbuf[:take]
        self._bdat_left -= take
        pending = None
        if self._bdat_error is None and self._message is not None:
            pending = self._message.write(self._normalize(data))
        if self._bdat_left == 0:
            if pending is not None:
                self._run(self._after(pending, self._bdat_done))
            else:
                self._bdat_done()
        elif pending is not None:
            self._run(pending)

    async def _after(self, pending: Deferred[Any], then: Any) -> None:
        await pending
        then()

    def _bdat_done(self) -> None:
        if self._bdat_error is not None:
            self._abort_transaction()
            self._reply(self._bdat_error)
        elif self._bdat_last:
            self._end_of_data(None)
        elif self._message is not None and self._message.failed is not None:
            reply = self._message.failed
            self._abort_transaction()
            self._reply(reply)
        else:
            self.sendCode(250, f"2.0.0 {self._message.size if self._message else 0} octets received")

    def _normalize(self, data: bytes) -> bytes:
        """Bare LF → CRLF across chunk boundaries (BDAT carries no line structure of its own)."""
        out = re.sub(rb"(?<!\r)\n", b"\r\n", data)
        if self._bdat_cr and data[:1] == b"\n":
            out = out[1:]
        self._bdat_cr = data[-1:] == b"\r"
        return out

    # -- transaction helpers -------------------------------------------------------------------

    def _require_session(self) -> None:
        """EHLO first (RFC 5321 §4.1.4); on submission, TLS (RFC 3207 §4) then AUTH (RFC 6409 §4.3)."""
        if self._helo_name is None:
            raise Reply(503, "5.5.1 Send HELO/EHLO first")
        if self.submission and not self.startedTLS:
            raise Reply(530, "5.7.0 Must issue a STARTTLS command first")
        if self.submission and self.user is None:
            raise Reply(530, "5.7.0 Authentication required")

    def _begin_message(self) -> None:
        self._require_session()
        txn = self._txn
        if txn is None:
            raise Reply(503, "5.5.1 Need MAIL command")
        if not txn.recipients:
            raise Reply(554, "5.5.1 No valid recipients")
        proto = ("UTF8SMTP" if txn.smtputf8 else "ESMTP" if self._esmtp else "SMTP")
        proto += ("S" if self.startedTLS else "") + ("A" if self.user is not None else "")
        header = trace_headers(host=self.factory.hostname, helo=self._helo_name or "", ip=self.ip,
                               protocol=proto, queue_id=txn.queue_id, recipients=txn.recipients,
                               return_path=None if self.submission else txn.mail_from,
                               when=self.factory.registry.clock.seconds())
        self._message = IncomingMessage(self.factory.registry, self.factory.delivery, txn, header,
                                        self.factory.max_size)
        self._bdat_cr = False

    def _abort_transaction(self) -> None:
        if self._message is not None:
            self._message.abort()
            self._message = None
        self._txn = None

    def _reset_session(self) -> None:
        """RFC 3207 §4.2: after STARTTLS the server forgets everything learned before it."""
        self._abort_transaction()
        self._helo_name, self._esmtp, self.user = None, False, None
