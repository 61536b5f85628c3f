"""atheris target: IMAP command framing, parser and command handlers, bytes in over a StringTransport.

The first input byte picks the session state (not authenticated, authenticated, INBOX selected
read-write, INBOX examined with CONDSTORE); the rest is fed to ``dataReceived`` in up to three
chunks (so literals and lines split across reads are exercised too). Store: an in-process SQLite
registry, rebuilt every few thousand inputs so mailboxes the fuzzer creates do not pile up.

Run: ``.venv/bin/python tests/fuzz/fuzz_imap.py -max_total_time=600``
"""

from __future__ import annotations

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
    from tests.support.imap import Client, IMAPEnv, message
    from tests.support.smtp import TLSStringTransport

USER = "alice@example.test"
PASSWORD = "secret-Pa55"
RESET_EVERY = 3000
MAX_INBOX = 50

_state: dict[str, Any] = {}


class _FakeTLS:
    def server_context_factory(self) -> object:
        return object()


class _Client(Client):
    """``tests.support.imap.Client`` on a transport that accepts ``startTLS``."""

    def __init__(self, factory: Any) -> None:
        from twisted.internet.address import IPv4Address

        self.transport = TLSStringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        self.proto = factory.buildProtocol(None)
        self.proto.makeConnection(self.transport)
        self.greeting = self.output().decode()


def setup() -> None:
    old = _state.get("env")
    if old is not None:
        old.registry.db.close()
    # a small quota: one input repeating "COPY 1:* INBOX" doubles INBOX per line (bounded by the quota,
    # as for any user; 10 GB of 100-byte messages would only make the fuzzer time out)
    registry = _common.new_registry(quota_bytes="300000")
    registry.provide("tls", _FakeTLS())  # STARTTLS works (the bytes stay plain) instead of "no certificate"
    env = IMAPEnv(registry)
    add_user(env.registry, USER, PASSWORD, fast_hash=True)
    from tests.support.harness import resolve

    resolve(env.store.ensure_defaults(USER))
    env.append(USER, message(1), flags=("\\Seen",))
    env.append(USER, message(2, subject="=?utf-8?q?caf=C3=A9?=", body="multi\r\npart\r\n"))
    env.append(USER, b"Content-Type: multipart/mixed; boundary=b\r\nSubject: mp\r\n\r\n--b\r\n"
                     b"Content-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
                     + message(3) + b"\r\n--b--\r\n")
    _state["env"] = env
    _state["n"] = 0


def _inbox_size() -> int:
    from tests.support.harness import resolve

    env = _state["env"]
    info = resolve(env.store.get_mailbox(USER, "INBOX"))
    return info.messages if info is not None else 0


def one_input(data: bytes) -> None:
    _state["n"] += 1
    if _state["n"] % RESET_EVERY == 0 or _inbox_size() > MAX_INBOX:
        setup()  # COPY 1:* INBOX doubles INBOX per input: keep every input's starting point small
    env = _state["env"]
    head, payload = _common.header(data, 3)
    mode, cut1, cut2 = head[0] % 4, head[1], head[2]
    c = _Client(env.factory)
    if mode >= 1:
        c.proto.login_done(USER)
    if mode == 2:
        c.proto.dataReceived(b"s0 SELECT INBOX\r\n")
    elif mode == 3:
        c.proto.dataReceived(b"s0 EXAMINE INBOX (CONDSTORE)\r\n")
    c.output()
    a, b = sorted((min(cut1, len(payload)), min(cut2, len(payload))))
    try:
        for part in (payload[:a], payload[a:b], payload[b:]):
            if part and not c.closed:
                c.proto.dataReceived(part)
    finally:
        c.proto.connectionLost(Failure(ConnectionDone()))
    out = c.output()
    if b"SERVERBUG" in out:
        _common.check_logged()
        raise AssertionError("NO [SERVERBUG] without a logged failure: " + out[-300:].decode("latin-1"))


def _seed(mode: int, text: bytes) -> bytes:
    return bytes([mode, 40, 200]) + text


SEEDS = [_seed(m, s) for m, s in [
    (0, b"a1 CAPABILITY\r\na2 NOOP\r\na3 LOGOUT\r\n"),
    (0, b'a1 LOGIN "alice@example.test" "secret-Pa55"\r\na2 SELECT INBOX\r\na3 FETCH 1:* (FLAGS)\r\n'),
    (0, b"a1 LOGIN {18}\r\nalice@example.test {11+}\r\nsecret-Pa55\r\n"),
    (0, b"a1 AUTHENTICATE PLAIN\r\nAGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQtUGE1NQ==\r\n"),
    (0, b"a1 AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQtUGE1NQ==\r\n"),
    (0, b'a1 ID ("name" "fuzz" "version" "1")\r\na2 STARTTLS\r\n'),
    (1, b'a1 LIST "" "*"\r\na2 LSUB "" "%"\r\na3 LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)\r\n'),
    (1, b'a1 CREATE "Work/&AOk-t&AOk-"\r\na2 RENAME "Work" "Play"\r\na3 DELETE Play\r\n'),
    (1, b'a1 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ RECENT SIZE)\r\n'),
    (1, b"a1 SUBSCRIBE Sent\r\na2 UNSUBSCRIBE Sent\r\na3 NAMESPACE\r\na4 ENABLE CONDSTORE UTF8=ACCEPT\r\n"),
    (1, b'a1 APPEND INBOX (\\Seen $Work) "17-Jul-1996 02:44:25 -0700" {23}\r\nSubject: x\r\n\r\nhello\r\n\r\n'),
    (1, b"a1 APPEND Drafts ~{10+}\r\nab\x00cdefghi\r\n"),
    (1, b"a1 IDLE\r\nDONE\r\n"),
    (2, b"a1 FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)\r\n"),
    (2, b"a1 FETCH 3 (BODY.PEEK[HEADER.FIELDS (Subject From)] BODY[1.MIME] BODY[2.1.TEXT]<0.10>)\r\n"),
    (2, b"a1 UID FETCH 1:* (BINARY.PEEK[1] BINARY.SIZE[1] MODSEQ) (CHANGEDSINCE 1)\r\n"),
    (2, b"a1 FETCH 1,2 (FAST)\r\na2 FETCH * ALL\r\na3 FETCH 1 FULL\r\na4 FETCH 2 RFC822.HEADER\r\n"),
    (2, b'a1 SEARCH CHARSET UTF-8 OR SUBJECT "caf\xc3\xa9" NOT FROM bob SINCE 1-Feb-1994 LARGER 10\r\n'),
    (2, b"a1 UID SEARCH RETURN (MIN MAX COUNT ALL) UID 1:* (SEEN UNSEEN) BEFORE \"7-Feb-2030\"\r\n"),
    (2, b"a1 SEARCH TEXT {5}\r\nhello HEADER Subject mp KEYWORD $Work MODSEQ 1 NOT DELETED\r\n"),
    (2, b"a1 STORE 1:2 +FLAGS.SILENT (\\Deleted $Junk)\r\na2 UID STORE 1 (UNCHANGEDSINCE 5) -FLAGS \\Seen\r\n"),
    (2, b"a1 COPY 1:* Trash\r\na2 UID MOVE 2 Archive\r\na3 EXPUNGE\r\na4 UID EXPUNGE 1:3\r\na5 CLOSE\r\n"),
    (2, b"a1 CHECK\r\na2 UNSELECT\r\na3 EXAMINE Sent\r\n"),
    (3, b"a1 FETCH 1:* (FLAGS) (CHANGEDSINCE 0 VANISHED)\r\na2 SEARCH MODSEQ \"/flags/\\\\Seen\" all 1\r\n"),
]]


if __name__ == "__main__":
    _common.main("imap", setup, one_input, SEEDS)
