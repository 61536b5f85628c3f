"""Long message lines (issue 21, item 5): accepted up to ``[limits] message_size`` in DATA and BDAT,
stored byte for byte (IMAP ``FETCH BODY[]`` returns what was sent, after dot-unstuffing), while
command lines keep their 512-octet limit; relayed to a remote MX unchanged (no 998 wrapping, so
DKIM signatures stay valid)."""

from __future__ import annotations

import re

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.test import iosim

from tau.mail.outbound.transfer import Settings, Transfer
from tests.support.harness import resolve
from tests.support.imap import IMAPEnv
from tests.support.sink import Sink, sink_protocol
from tests.support.smtp import Client, make_factory, strip_trace

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    env = IMAPEnv(registry)
    env.add_user(ALICE)
    return env


def newsletter(line: bytes, subject: str = "news") -> bytes:
    return (b"From: news@remote.test\r\nTo: alice@example.test\r\nSubject: " + subject.encode()
            + b"\r\nMessage-ID: <" + subject.encode() + b"@remote.test>\r\n\r\n<p>intro</p>\r\n" + line
            + b"\r\n<p>end</p>\r\n")


def fetched(env: IMAPEnv, index: int = 1) -> bytes:
    """BODY[] of message ``index`` in alice's INBOX, over IMAP."""
    imap = env.client(ALICE, mailbox="INBOX")
    raw = imap.send(f"f1 FETCH {index} BODY[]\r\n".encode())
    m = re.search(rb"BODY\[\] \{(\d+)\}\r\n", raw)
    assert m is not None, raw[:300]
    return raw[m.end():m.end() + int(m.group(1))]


def test_a_5000_character_line_is_delivered_and_fetched_byte_exact(registry, env):
    body = newsletter(b"<td>" + b"x" * 4992 + b"</td>")
    c = Client(make_factory(registry, env.store, "smtp"))
    c.ehlo()
    assert c.mail("news@remote.test", [ALICE], body)[-1].code == 250
    assert strip_trace(fetched(env)) == body


def test_a_long_line_with_a_leading_dot_is_unstuffed_once(registry, env):
    line = b"." + b"y" * 200_000                          # over the piece size: passed on in pieces
    body = newsletter(line, "dotted")
    c = Client(make_factory(registry, env.store, "smtp"))
    c.ehlo()
    c.send(b"MAIL FROM:<news@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    wire = body.replace(b"\r\n.", b"\r\n..")
    for pos in range(0, len(wire), 16384):             # as the network delivers it
        assert c.send(wire[pos:pos + 16384]) == []
    assert [r.code for r in c.send(b".\r\n")] == [250]
    assert strip_trace(fetched(env)) == body


def test_a_long_line_over_bdat_is_stored_as_sent(registry, env):
    body = newsletter(b"z" * 5000, "chunked")
    c = Client(make_factory(registry, env.store, "smtp"))
    c.ehlo()
    c.cmd("MAIL FROM:<news@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    half = len(body) // 2
    replies = c.send(b"BDAT %d\r\n%sBDAT %d LAST\r\n%s" % (half, body[:half], len(body) - half, body[half:]))
    assert [r.code for r in replies] == [250, 250]
    assert strip_trace(fetched(env)) == body


def test_a_line_longer_than_the_message_size_limit_is_552(registry, env):
    factory = make_factory(registry, env.store, "smtp", max_size=20_000)
    c = Client(factory)
    c.ehlo()
    assert [(r.code, r.text[:5]) for r in c.mail("news@remote.test", [ALICE], newsletter(b"w" * 30_000))][-1] \
        == (552, "5.3.4")
    assert c.mail("news@remote.test", [ALICE], newsletter(b"w" * 5000))[-1].code == 250


def test_command_lines_keep_the_512_octet_limit(registry, env):
    c = Client(make_factory(registry, env.store, "smtp"))
    c.ehlo()
    reply = c.cmd(b"RCPT TO:<" + b"a" * 600 + b"@example.test>")
    assert (reply.code, reply.text) == (500, "5.5.2 Line too long")


def test_a_line_over_998_is_relayed_unchanged(tmp_path):
    """The outbound client sends lines as stored: no CRLF SP inserted at 998 (see transfer.py)."""
    reactor = MemoryReactorClock()
    sink = Sink({"out": str(tmp_path)})

    class OneMX:
        async def mx(self, domain: str) -> list[tuple[int, str]]:
            return [(10, "mx.dest.test")]

        async def addresses(self, host: str) -> list[str]:
            return ["127.0.0.1"]

    transfer = Transfer(reactor, OneMX(), None, Settings(helo="me.test"))
    message = newsletter(b"<td>" + b"q" * 4992 + b"</td>", "relay").replace(b"alice@example.test", b"b@dest.test")

    async def source():
        yield message

    d = defer.ensureDeferred(transfer.deliver("dest.test", "news@example.test", ["b@dest.test"], len(message),
                                              False, source))
    pumps: list[iosim.IOPump] = []
    for _ in range(100):
        if d.called:
            break
        while len(pumps) < len(reactor.tcpClients):
            client = reactor.tcpClients[len(pumps)][2].buildProtocol(None)
            server = sink_protocol(sink)()
            pumps.append(iosim.connect(server, iosim.FakeTransport(server, True), client,
                                       iosim.FakeTransport(client, False), greet=False, clock=reactor))
        for pump in pumps:
            pump.flush()
    [outcome] = resolve(d)
    assert outcome.status == "sent"
    [eml] = list(tmp_path.glob("*.eml"))
    assert eml.read_bytes() == message
