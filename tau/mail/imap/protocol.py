"""IMAP4rev1 connection: framing, literals, state machine (RFC 3501 §2.2, §3, §5.5); dispatch is in dispatch.py.

Input is read as CRLF lines; a line ending in ``{n}`` (synchronizing: answered with ``+``) or
``{n+}`` (LITERAL+, RFC 7888) is followed by ``n`` octets that belong to the same command.
Commands run one at a time, in order (pipelined input waits in the buffer). Limits: a line is at
most :data:`MAX_LINE` octets (longer: ``BAD``, the line is skipped), a literal at most
:data:`MAX_LITERAL` except in APPEND where ``[limits] message_size`` applies (bigger: ``NO
[TOOBIG]``; a non-synchronizing one is read and dropped, RFC 7888 §4), too many ``BAD`` in a row
or 30 minutes without input ends the connection.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import INegotiated, IPushProducer, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from tau.net.endpoints import set_no_delay
from tau.net.slow import SlowSender
from tau.storage.budget import QueryCancelled, act_as
from tau.storage.faults import is_unavailable

from . import auth, dispatch, idle, keywords, notify_push, rev2
from .base import State
from .parser import ATOM_CHARS
from .session import SelectedMailbox

log = Logger(namespace="tau.mail.imap")

MAX_LINE = 64 * 1024
MAX_LITERAL = 64 * 1024            # outside APPEND
MAX_COMMAND = 1024 * 1024          # all lines and small literals of one command
APPEND_TOTAL = 2                   # MULTIAPPEND: all literals of one APPEND ≤ this × message_size
MAX_BAD = 20                       # consecutive BAD responses before the connection is closed
IDLE_TIMEOUT = 30 * 60             # RFC 3501 §5.4: at least 30 minutes once authenticated
PREAUTH_TIMEOUT = 5 * 60
#: read-only commands abandoned (their database work cancelled) when the client goes away
CANCEL_ON_CLOSE = frozenset({"SEARCH", "UID SEARCH", "FETCH", "UID FETCH", "STATUS", "LIST", "LSUB",
                             "SELECT", "EXAMINE", "GETQUOTAROOT"})
_LITERAL_RE = re.compile(rb"~?\{(\d{1,12})(\+?)\}$")  # "~{n}": literal8 (RFC 3516 §4.2)
_TAG_CHARS = frozenset(c for c in ATOM_CHARS | {ord("]")} if c < 0x80) - {ord("+")}  # tag: 7-bit ASTRING-CHARs


@implementer(IPushProducer)
class IMAPConnection(Protocol):
    """One client connection. Command modules use the attributes and helpers below."""

    state = State.NOT_AUTH
    user: str | None = None
    selected: SelectedMailbox | None = None
    condstore = False
    utf8 = False   # UTF8=ACCEPT or IMAP4rev2 enabled: mailbox names in UTF-8 (rev2.py)
    rev2 = False   # IMAP4rev2 enabled (RFC 9051): no RECENT, ESEARCH for SEARCH (rev2.py)
    qresync = False  # ENABLE QRESYNC: VANISHED instead of EXPUNGE (qresync.py)
    tls = False
    idling = False
    idle_push: defer.Deferred[None] | None = None
    notify_spec: Any = None          # NOTIFY SET (notify.py)
    notify_task: defer.Deferred[None] | None = None  # a NOTIFY push under way (notify_push.py)
    _timeout_call: Any = None

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.registry = factory.registry
        self.store = factory.store
        self._buf = bytearray()
        self._segments: list[bytes] = []   # the command being read
        self._cmd_size = 0
        self._append_total = 0              # literal octets of this APPEND so far (MULTIAPPEND)
        self._literal_left = 0              # octets of literal still to read
        self._literal: bytearray | None = None  # None while discarding a literal
        self._error: tuple[str, str] | None = None  # ("NO"|"BAD", text) once the command is lost
        self._skip_line = False             # discarding the rest of an over-long line
        self._skip_tag: bytes | None = None
        self._busy = False
        self._command: defer.Deferred[None] | None = None  # the running command
        self.command_name = ""
        self.command_tag = ""
        self._line_waiter: defer.Deferred[bytes] | None = None
        self._paused = False
        self._processing = False
        self._input_paused = False
        self._drain: list[defer.Deferred[None]] = []
        self._bad = 0
        self.peer_ip = ""
        self.loopback = False
        limits = self.registry.config.limits
        self._line_timeout: float = limits.line_timeout
        self._command_timeout: float = limits.data_timeout
        self._slow = SlowSender(self.registry.reactor, self._too_slow)

    # -- connection lifecycle ------------------------------------------------------------------
    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer_ip = getattr(peer, "host", "") or ""
        try:
            ip = ipaddress.ip_address(self.peer_ip)
            self.loopback = ip.is_loopback or (getattr(ip, "ipv4_mapped", None) or ip).is_loopback
        except ValueError:
            self.loopback = False
        self.tls = ISSLTransport.providedBy(self.transport) or INegotiated.providedBy(self.transport)
        set_no_delay(self.transport)
        self.transport.registerProducer(self, True)
        self.factory.connection_opened(self)
        self._reset_timeout()
        self.write(b"* OK [CAPABILITY " + auth.capabilities(self).encode() + b"] tau IMAP4rev1 ready\r\n")

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.state = State.LOGOUT
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.cancel()
        self._timeout_call = None
        self._slow.stop()
        self.factory.connection_closed(self)
        waiter, self._line_waiter = self._line_waiter, None
        if waiter is not None:
            waiter.errback(ConnectionError("connection lost"))
        for d in self._drain:
            d.callback(None)
        self._drain = []
        running, self._command = self._command, None
        if running is not None and self.command_name in CANCEL_ON_CLOSE:
            running.cancel()  # nobody will read the answer: stop its query, free the connection

    def _reset_timeout(self) -> None:
        delay = IDLE_TIMEOUT if self.state & (State.AUTH | State.SELECTED) else PREAUTH_TIMEOUT
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.reset(delay)
        else:
            self._timeout_call = self.registry.reactor.callLater(delay, self._timed_out)

    def _too_slow(self, what: str) -> None:
        """A line (``[limits] line_timeout``) or a command with its literals (``data_timeout``)
        did not arrive in time, however slowly its bytes kept coming."""
        if self.state == State.LOGOUT:
            return
        log.info("imap closing {ip}: {what} not received in time", ip=self.peer_ip, what=what)
        self.write(b"* BYE Timeout: command not received in time\r\n")
        self.state = State.LOGOUT
        self.transport.loseConnection()

    def _watch(self) -> None:
        """Tell the slow-sender deadlines whether a partial line and a command are under way."""
        if self.state == State.LOGOUT:
            return
        waiting = self._busy and self._line_waiter is None  # our turn, not the client's
        partial = (bool(self._buf) or self._skip_line) and not self._literal_left and not waiting
        self._slow.line(self._line_timeout if partial else None)
        reading = bool(self._segments or self._literal_left) and not waiting
        self._slow.phase(self._command_timeout if reading else None)

    def _timed_out(self) -> None:
        self.write(b"* BYE Autologout; idle for too long\r\n")
        self.transport.loseConnection()

    # -- output ----------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def untagged(self, *lines: str) -> None:
        """``* line`` for each line (already formatted, without the star)."""
        if lines and self.rev2:
            lines = rev2.scrub(lines)
        if lines:
            self.write("".join(f"* {line}\r\n" for line in lines).encode("utf-8"))

    def busy(self) -> bool:
        """A command is running (its output may be under way)."""
        return self._busy

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        waiting, self._drain = self._drain, []
        for d in waiting:
            d.callback(None)

    def stopProducing(self) -> None:
        self.resumeProducing()

    def drain(self) -> defer.Deferred[None]:
        """Fires once the transport has room again (big FETCH responses wait on this)."""
        if not self._paused or self.state == State.LOGOUT:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._drain.append(d)
        return d

    def read_line(self) -> defer.Deferred[bytes]:
        """The next input line (AUTHENTICATE continuation, IDLE's DONE)."""
        d: defer.Deferred[bytes] = defer.Deferred()
        self._line_waiter = d
        self._process()  # a pipelined line may already be waiting
        return d

    # -- input framing -------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        self._buf += data
        self._reset_timeout()
        self._process()

    def _process(self) -> None:
        """Consume buffered input. Not re-entrant: commands that finish synchronously return here
        and the loop continues, so a long pipeline does not recurse."""
        if self._processing:
            return
        self._processing = True
        try:
            self._process_loop()
        finally:
            self._processing = False
        self._watch()

    def _process_loop(self) -> None:
        while self._buf and self.state != State.LOGOUT:
            if self._busy and self._line_waiter is None:
                if len(self._buf) > MAX_COMMAND and not self._input_paused:
                    self._input_paused = True  # stop reading until this command is done
                    self.transport.pauseProducing()
                return
            if self._literal_left:
                self._read_literal()
                continue
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    if not self._skip_line and not self._segments:
                        self._skip_tag = _tag_of(bytes(self._buf[:200]))
                    del self._buf[:]
                    self._skip_line = True
                return
            line = bytes(self._buf[:nl])
            del self._buf[:nl + 1]
            self._slow.line_done()
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._skip_line or len(line) > MAX_LINE:
                self._skip_line = False
                self._abandon("BAD", "Line too long")
                continue
            if self._line_waiter is not None and not self._segments:
                waiter, self._line_waiter = self._line_waiter, None
                waiter.callback(line)
                continue
            self._take_line(line)

    def _read_literal(self) -> None:
        n = min(self._literal_left, len(self._buf))
        if self._literal is not None:
            self._literal += self._buf[:n]
        del self._buf[:n]
        self._literal_left -= n
        if self._literal_left == 0:
            self._segments.append(bytes(self._literal) if self._literal is not None else b"")
            self._literal = None

    def _take_line(self, line: bytes) -> None:
        m = _LITERAL_RE.search(line)
        text = line[:m.start()] if m else line
        self._segments.append(text)
        self._cmd_size += len(text)
        if self._cmd_size > MAX_COMMAND:
            self._error = self._error or ("BAD", "Command too long")
        if not m:
            self._complete()
            return
        size, nonsync = int(m.group(1)), bool(m.group(2))
        limit = self._literal_limit()
        if size > limit and self._error is None:
            self._error = ("NO", "[TOOBIG] Literal is too big") if limit > MAX_LITERAL or self._is_append() \
                else ("BAD", "Literal is too big")
        if self._error is None:
            self._cmd_size += size if size <= MAX_LITERAL else 0
            if self._cmd_size > MAX_COMMAND and not self._is_append():
                self._error = ("BAD", "Command too long")
            elif self._is_append():
                self._append_total += size
                if self._append_total > APPEND_TOTAL * limit:
                    self._error = ("NO", "[LIMIT] Too much data in one APPEND, send fewer messages")
        if self._error is not None:
            if not nonsync:
                self._complete()  # the client waits for "+", which never comes: the command is over
                return
            if size > 2 * max(limit, MAX_COMMAND):  # not worth reading: end the connection
                self._segments = []
                self._respond_error(_tag_of(line) or b"*", "BAD", "Literal is too big")
                self.write(b"* BYE Literal is too big\r\n")
                self.state = State.LOGOUT
                self.transport.loseConnection()
                return
            self._literal = None  # RFC 7888 §4: read the announced octets and drop them
        else:
            self._literal = bytearray()
            if not nonsync:
                self.write(b"+ Ready for literal data\r\n")
        self._literal_left = size
        if size == 0:
            self._segments.append(b"")
            self._literal = None

    def _is_append(self) -> bool:
        head = self._segments[0].split(b" ", 3)
        return len(head) > 1 and head[1].upper() == b"APPEND"

    def _literal_limit(self) -> int:
        if self._is_append():
            return int(self.registry.config.limits.message_size)
        return MAX_LITERAL

    def _abandon(self, status: str, text: str) -> None:
        """The current command is lost (over-long line): answer once its last line is in."""
        if not self._segments:
            tag, self._skip_tag = self._skip_tag, None
            self._respond_error(tag or b"*", status, text)
            return
        self._error = self._error or (status, text)

    def _complete(self) -> None:
        segments, self._segments = self._segments, []
        error, self._error = self._error, None
        self._cmd_size = 0
        self._append_total = 0
        tag = _tag_of(segments[0])
        if error is not None:
            self._respond_error(tag or b"*", *error)
            return
        self._busy = True
        d = defer.ensureDeferred(self._run(tag, segments))
        self._command = d
        d.addErrback(self._internal_error, tag)
        d.addBoth(self._finished)

    def _finished(self, _: object) -> None:
        self._busy = False
        self._command = None
        self.command_name = ""
        if self.state == State.LOGOUT:
            return
        if self._input_paused:
            self._input_paused = False
            self.transport.resumeProducing()
        notify_push.command_done(self)
        if self._buf and not self._processing:
            self._process()

    def _respond_error(self, tag: bytes, status: str, text: str) -> None:
        self.write(tag + b" " + status.encode() + b" " + text.encode("utf-8", "replace") + b"\r\n")
        if status == "BAD":
            self._count_bad()

    def _count_bad(self) -> None:
        self._bad += 1
        if self._bad >= MAX_BAD:
            self.write(b"* BYE Too many invalid commands\r\n")
            self.state = State.LOGOUT
            self.transport.loseConnection()

    def _internal_error(self, failure: Failure, tag: bytes | None) -> None:
        if self.state == State.LOGOUT and failure.check(defer.CancelledError, QueryCancelled):
            return  # abandoned when the client went away
        if is_unavailable(failure.value):  # an outage to wait out, not a bug (RFC 5530 UNAVAILABLE)
            log.warn("IMAP command {name}: storage unavailable ({error})", name=self.command_name,
                     error=str(failure.value)[:200])
            if self.state != State.LOGOUT:
                self.write((tag or b"*") + b" NO [UNAVAILABLE] Temporarily unavailable, try again later\r\n")
            return
        log.failure("IMAP command failed user={user}", failure=failure, user=self.user)
        if self.state != State.LOGOUT:
            self.write((tag or b"*") + b" NO [SERVERBUG] Internal error\r\n")

    # -- dispatch (dispatch.py) ------------------------------------------------------------------
    async def _run(self, tag: bytes | None, segments: list[bytes]) -> None:
        if tag is None:
            self.write(b"* BAD Missing or invalid tag\r\n")
            self._count_bad()
            return
        act_as(self.user)  # this command's database work counts against the user's share
        outcome = await dispatch.run(self, tag, segments)
        if outcome is not None and outcome[0] == "BAD":
            self._respond_error(tag, *outcome)
            return
        self._bad = 0
        if outcome is not None:
            self.write(tag + b" " + outcome[0].encode() + b" " + outcome[1].encode("utf-8", "replace") + b"\r\n")

    # -- selection -------------------------------------------------------------------------------
    def select(self, view: SelectedMailbox | None) -> None:
        if self.selected is not None:
            self.factory.unwatch(self, self.selected.mailbox_id)
        self.selected = view
        if view is not None:
            self.factory.watch(self, view.mailbox_id)
            self.state = State.SELECTED
        elif self.state == State.SELECTED:
            self.state = State.AUTH

    def mailbox_changed(self, event: dict[str, Any]) -> None:
        """A ``mailbox.changed`` event for the selected mailbox (called by the factory)."""
        sel = self.selected
        if sel is None or event.get("mailbox_id") != sel.mailbox_id:
            return
        modseq = event.get("modseq")
        sel.mark(str(event.get("kind", "")), modseq if isinstance(modseq, int) else 0)
        keywords.note_event(sel, event)
        idle.notify(self)

    def login_done(self, user: str) -> None:
        self.user = user
        self.state = State.AUTH
        self._reset_timeout()


def _tag_of(first_line: bytes) -> bytes | None:
    sp = first_line.find(b" ")
    tag = first_line if sp < 0 else first_line[:sp]
    if not tag or any(c not in _TAG_CHARS for c in tag):
        return None
    return tag

