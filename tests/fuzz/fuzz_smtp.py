"""atheris target: the SMTP command / DATA / BDAT state machine, bytes in over a StringTransport.

The first input byte picks the starting point: MX (port 25) fresh or after EHLO, submission fresh
or authenticated (EHLO, STARTTLS, EHLO, AUTH PLAIN), or already inside DATA on either (the rest
is then message text, dot-stuffing and the end-of-data dot included). The rest is fed in up to
three chunks. Accepted messages go through the real MIME parser and delivery into an in-process
SQLite store, rebuilt every few thousand inputs.

Run: ``.venv/bin/python tests/fuzz/fuzz_smtp.py -max_total_time=600``
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).parent))
import _common  # noqa: E402

with atheris.instrument_imports(include=["tau"]):
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    from tests.support.harness import add_user
    from tests.support.smtp import Client, mail_store, make_factory

ALICE, BOB = "alice@example.test", "bob@example.test"
PASSWORD = "secret-Pa55"
RESET_EVERY = 3000
AUTH = b"AUTH PLAIN " + base64.b64encode(f"\0{BOB}\0{PASSWORD}".encode()) + b"\r\n"
_state: dict[str, Any] = {}


def setup() -> None:
    old = _state.get("registry")
    if old is not None:
        old.db.close()
    registry = _common.new_registry()
    add_user(registry, ALICE, PASSWORD, fast_hash=True)
    add_user(registry, BOB, PASSWORD, fast_hash=True)
    store = mail_store(registry)
    _state.update(registry=registry, n=0, mx=make_factory(registry, store, "smtp"),
                  sub=make_factory(registry, store, "submission"))


def _start(mode: int) -> Client:
    c = Client(_state["sub"] if mode in (2, 3, 5) else _state["mx"])
    if mode in (1, 4):
        c.send(b"EHLO client.example\r\n")
    if mode in (3, 5):
        c.send(b"EHLO client.example\r\nSTARTTLS\r\n")
        c.send(b"EHLO client.example\r\n" + AUTH)
    if mode == 4:
        c.send(b"MAIL FROM:<x@remote.test> BODY=8BITMIME\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    if mode == 5:
        c.send(b"MAIL FROM:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<c@remote.test>\r\n"
               b"DATA\r\n")
    c.read()
    return c


def one_input(data: bytes) -> None:
    _state["n"] += 1
    if _state["n"] % RESET_EVERY == 0:
        setup()
    head, payload = _common.header(data, 3)
    mode, cut1, cut2 = head[0] % 6, head[1], head[2]
    c = _start(mode)
    a, b = sorted((min(cut1, len(payload)), min(cut2, len(payload))))
    try:
        for part in (payload[:a], payload[a:b], payload[b:]):
            if part and not c.closed:
                c.protocol.dataReceived(part)
    finally:
        c.protocol.connectionLost(Failure(ConnectionDone()))
    out = c.transport.value()
    if b"451 4.3.0 Local error in processing" in out:
        _common.check_logged()
        raise AssertionError("451 without a logged failure")


def _seed(mode: int, text: bytes) -> bytes:
    return bytes([mode, 60, 200]) + text


MSG = (b"From: x@remote.test\r\nTo: alice@example.test\r\nSubject: hi\r\nMessage-ID: <1@remote.test>\r\n"
       b"Date: Mon, 24 Nov 2025 10:00:00 +0000\r\n\r\nHello\r\n..dot stuffed\r\n")
MIME = (b"Subject: mp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n"
        b"--b\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"AAECAw==\r\n--b--\r\n")
SEEDS = [_seed(m, s) for m, s in [
    (0, b"EHLO client.example\r\nMAIL FROM:<x@remote.test> SIZE=100\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
        + MSG + b".\r\nQUIT\r\n"),
    (0, b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<Alice@Example.Test>\r\nRSET\r\nNOOP\r\nVRFY a\r\nEXPN b\r\nHELP\r\n"),
    (1, b"MAIL FROM:<x@remote.test> SMTPUTF8\r\nRCPT TO:<alice@example.test> NOTIFY=NEVER\r\nBDAT 10\r\n"
        b"Subject: xBDAT 5 LAST\r\n\r\nhi\r\n"),
    (1, b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
        + MIME + b".\r\n"),
    (1, b"STARTTLS\r\nEHLO again\r\nMAIL FROM:<\xc3\xa9@remote.test> SMTPUTF8\r\n"),
    (2, b"EHLO c\r\nAUTH PLAIN\r\n\r\nSTARTTLS\r\nEHLO c\r\nAUTH LOGIN\r\nYm9iQGV4YW1wbGUudGVzdA==\r\n"
        b"c2VjcmV0LVBhNTU=\r\n"),
    (3, b"MAIL FROM:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nFrom: bob@example.test\r\n"
        b"Subject: s\r\n\r\nbody\r\n.\r\n"),
    (3, b"MAIL FROM:<bob@example.test> BODY=BINARYMIME\r\nRCPT TO:<someone@remote.test>\r\nBDAT 20 LAST\r\n"
        b"Subject: b\n\nbare lf\n"),
    (4, MSG + b".\r\nMAIL FROM:<y@remote.test>\r\n"),
    (4, b"Subject: a\r\n\r\nline\rwith bare cr\r\n.\r\n"),
    (4, MIME + b"\r\n.\r\n"),
    (5, b"From: bob@example.test\r\nSubject: x\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\n"
        b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTART:20240101T100000Z\r\n"
        b"ORGANIZER:mailto:bob@example.test\r\nATTENDEE:mailto:alice@example.test\r\nEND:VEVENT\r\n"
        b"END:VCALENDAR\r\n.\r\n"),
]]


if __name__ == "__main__":
    _common.main("smtp", setup, one_input, SEEDS)
