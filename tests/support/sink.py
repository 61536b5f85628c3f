"""The SMTP sink standing in for a remote MX in tests (RFC 5321, just what tau's client uses).

Connections to an address in ``dsn_addresses`` see DSN (RFC 3461) advertised, in
``requiretls_addresses`` REQUIRETLS (RFC 8689, after STARTTLS); the envelope saved records the MAIL
and RCPT parameters. Behaviour by recipient local part: ``reject*`` → 550 at RCPT (its text from
``out/diagnostic`` when that file exists); ``tempfail*`` → 451 at end of data for the first two
attempts of each Message-ID; a file ``out/stall`` makes the sink hold its reply to
the end of data until the connection drops (see ``tests.support.outbound``). Every accepted message
is written to ``out/`` only after it was answered 250.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from twisted.protocols.basic import LineOnlyReceiver


class Sink:
    """State shared by the sink's connections."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.out = Path(spec["out"])
        self.auth = spec.get("auth")
        self.dsn_addresses = set(spec.get("dsn_addresses", ()))   # listening addresses that advertise DSN
        self.requiretls_addresses = set(spec.get("requiretls_addresses", ()))   # ... and REQUIRETLS over TLS
        self.tls = None
        self.attempts: dict[str, int] = {}
        self.current = self.peak = self.connections = self.saved = 0
        if spec.get("tls_cert"):
            from twisted.internet import ssl

            pem = Path(spec["tls_cert"]).read_text() + Path(spec["tls_key"]).read_text()
            self.tls = ssl.PrivateCertificate.loadPEM(pem).options()

    def stats(self) -> None:
        tmp = self.out / ".stats.tmp"
        tmp.write_text(json.dumps({"current": self.current, "peak": self.peak, "connections": self.connections}))
        os.replace(tmp, self.out / "stats.json")

    def stalled(self) -> bool:
        try:
            text = (self.out / "stall").read_text().strip()
        except FileNotFoundError:
            return False
        return not text.isdigit() or self.saved >= int(text)

    def diagnostic(self) -> str:
        """The text of a 550 for a ``reject*`` recipient: ``out/diagnostic`` when there is one."""
        try:
            return (self.out / "diagnostic").read_text().strip() or "no such user here"
        except FileNotFoundError:
            return "no such user here"

    def save(self, data: bytes, envelope: dict[str, Any]) -> None:
        self.saved += 1
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:6]}"
        (self.out / f".{name}.tmp").write_bytes(data)
        (self.out / f"{name}.json").write_text(json.dumps(envelope))
        os.replace(self.out / f".{name}.tmp", self.out / f"{name}.eml")


class SinkSMTP(LineOnlyReceiver):
    """One connection to the sink; each command is a ``smtp_<VERB>(arg)`` method."""

    delimiter = b"\r\n"
    MAX_LENGTH = 100_000
    sink: Sink  # set by sink_protocol

    def connectionMade(self) -> None:
        sink = self.sink
        sink.current += 1
        sink.connections += 1
        sink.peak = max(sink.peak, sink.current)
        sink.stats()
        self.tls = False
        self.user: str | None = None
        self.reset()
        self.reply("220 mx.remote.test ESMTP sink")

    def connectionLost(self, reason: Any = None) -> None:
        self.sink.current -= 1
        self.sink.stats()

    def reset(self) -> None:
        self.mail_from: str | None = None
        self.rcpts: list[str] = []
        self.mail_args = ""
        self.rcpt_args: list[str] = []
        self.data: list[bytes] | None = None

    def reply(self, text: str) -> None:
        self.transport.write(text.encode() + b"\r\n")

    def lineReceived(self, line: bytes) -> None:
        if self.data is not None:
            if line == b".":
                self.end_of_data()
            else:
                self.data.append(line[1:] if line.startswith(b".") else line)
            return
        verb, _, arg = line.decode("utf-8", "replace").partition(" ")
        handler = getattr(self, "smtp_" + verb.upper(), None)
        if handler is None:
            self.reply("502 5.5.2 unknown command")
        else:
            handler(arg)

    def smtp_EHLO(self, arg: str) -> None:
        ext = ["PIPELINING", "8BITMIME", "SIZE 100000000", "ENHANCEDSTATUSCODES"]
        if self.sink.tls is not None and not self.tls:
            ext.append("STARTTLS")
        if self.sink.auth:
            ext.append("AUTH PLAIN")
        if getattr(self.transport.getHost(), "host", None) in self.sink.dsn_addresses:
            ext.append("DSN")
        if self.tls and getattr(self.transport.getHost(), "host", None) in self.sink.requiretls_addresses:
            ext.append("REQUIRETLS")
        self.reply("\r\n".join([f"250-mx.remote.test hello {arg}"] + [f"250-{e}" for e in ext[:-1]]
                               + [f"250 {ext[-1]}"]))

    def smtp_HELO(self, arg: str) -> None:
        self.reply("250 mx.remote.test")

    def smtp_STARTTLS(self, arg: str) -> None:
        if self.sink.tls is None:
            self.reply("502 5.5.2 unknown command")
            return
        self.reply("220 2.0.0 go ahead")
        self.transport.startTLS(self.sink.tls)
        self.tls = True
        self.reset()

    def smtp_AUTH(self, arg: str) -> None:
        if not self.sink.auth:
            self.reply("502 5.5.2 unknown command")
            return
        try:
            _, user, password = base64.b64decode(arg.split(" ", 1)[1]).decode().split("\0")
        except Exception:
            self.reply("501 5.5.2 bad AUTH")
            return
        if [user, password] == list(self.sink.auth):
            self.user = user
            self.reply("235 2.7.0 ok")
        else:
            self.reply("535 5.7.8 bad credentials")

    def smtp_MAIL(self, arg: str) -> None:
        if self.sink.auth and self.user is None:
            self.reply("530 5.7.0 authentication required")
            return
        self.mail_from = arg.partition(":")[2].strip().split(" ")[0].strip("<>")
        self.mail_args = arg.partition(">")[2].strip()
        self.reply("250 2.1.0 ok")

    def smtp_RCPT(self, arg: str) -> None:
        rcpt = arg.partition(":")[2].strip().split(" ")[0].strip("<>")
        if rcpt.lower().startswith("reject"):
            self.reply(f"550 5.1.1 <{rcpt}>: {self.sink.diagnostic()}")
        else:
            self.rcpts.append(rcpt)
            self.rcpt_args.append(arg.partition(">")[2].strip())
            self.reply("250 2.1.5 ok")

    def smtp_DATA(self, arg: str) -> None:
        if not self.rcpts:
            self.reply("554 5.5.1 no valid recipients")
            return
        self.data = []
        self.reply("354 go ahead")

    def smtp_RSET(self, arg: str) -> None:
        self.reset()
        self.reply("250 2.0.0 ok")

    def smtp_NOOP(self, arg: str) -> None:
        self.reply("250 2.0.0 ok")

    def smtp_QUIT(self, arg: str) -> None:
        self.reply("221 2.0.0 bye")
        self.transport.loseConnection()

    def end_of_data(self) -> None:
        sink = self.sink
        data = b"\r\n".join(self.data or []) + b"\r\n"
        envelope = {"mail_from": self.mail_from, "rcpts": self.rcpts, "tls": self.tls, "user": self.user,
                    "mail_args": self.mail_args, "rcpt_args": self.rcpt_args}
        self.reset()
        if sink.stalled():
            return                           # the sender waits; nothing is kept
        if any(r.lower().startswith("tempfail") for r in envelope["rcpts"]):
            mid = _message_id(data)
            sink.attempts[mid] = sink.attempts.get(mid, 0) + 1
            if sink.attempts[mid] <= 2:
                self.reply("451 4.3.0 try again later")
                return
        sink.save(data, envelope)
        self.reply("250 2.0.0 accepted")


def sink_protocol(sink: Sink) -> Any:
    """A protocol class for ``ServerFactory.forProtocol``: every connection shares ``sink``."""
    return type("SinkSMTP", (SinkSMTP,), {"sink": sink})


def _message_id(data: bytes) -> str:
    for line in data.split(b"\r\n"):
        if not line:
            break
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return ""
