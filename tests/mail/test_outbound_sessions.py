"""What makes one delivery cheap, without a network: SMTP sessions reused for the next message to
the same domain (and given up when idle, too old, dead, or when the per-domain limit needs the
room), DNS answers kept for their TTL (negative ones per RFC 2308 only with an SOA), and RSA DKIM
signatures made by OpenSSL identical to dkimpy's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dkim
import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.names import dns, error
from twisted.test import iosim

from tau.mail.outbound import sessions
from tau.mail.outbound.dns import DNSTempError, MailDNS, NoSuchDomain
from tau.mail.outbound.transfer import Settings, Transfer
from tau.mail.trust import dkim as tau_dkim
from tests.support.harness import resolve
from tests.support.sink import Sink, sink_protocol

MESSAGE = b"From: a@example.test\r\nTo: b@dest.test\r\nSubject: s\r\nMessage-ID: <s@example.test>\r\n\r\nhello\r\n"


class FakeDNS:
    async def mx(self, domain: str) -> list[tuple[int, str]]:
        return [(10, "mx.dest.test")]

    async def addresses(self, host: str) -> list[str]:
        return ["127.0.0.1"]


class Network:
    """Each connectTCP of the transfer gets a sink (the test peer's SMTP server), pumped in memory."""

    def __init__(self, folder: Path) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1000)
        self.sink = Sink({"out": str(folder)})
        self.pumps: list[iosim.IOPump] = []
        self.transfer = Transfer(self.reactor, FakeDNS(), None, Settings(helo="me.test", max_per_domain=2))

    def flush(self) -> None:
        while len(self.pumps) < len(self.reactor.tcpClients):
            factory = self.reactor.tcpClients[len(self.pumps)][2]
            client = factory.buildProtocol(None)
            server = sink_protocol(self.sink)()
            self.pumps.append(iosim.connect(server, iosim.FakeTransport(server, True), client,
                                            iosim.FakeTransport(client, False), greet=False, clock=self.reactor))
        for pump in self.pumps:
            pump.flush()

    def run(self, coro: Any) -> Any:
        d = defer.ensureDeferred(coro)
        for _ in range(100):
            if d.called:
                break
            self.flush()
        return resolve(d)

    def send(self, rcpt: str = "b@dest.test") -> str:
        async def source() -> Any:
            yield MESSAGE

        [outcome] = self.run(self.transfer.deliver("dest.test", "a@example.test", [rcpt], len(MESSAGE), False,
                                                   source))
        return outcome.status


def test_a_session_carries_several_messages(tmp_path):
    net = Network(tmp_path)
    assert [net.send() for _ in range(3)] == ["sent"] * 3
    assert len(net.reactor.tcpClients) == 1 and net.sink.saved == 3         # one connection, three messages
    assert net.transfer.sessions.idle_count("dest.test") == 1
    assert net.send("reject-me@dest.test") == "failed"                    # 550 at RCPT: not reused after
    assert net.transfer.sessions.idle_count("dest.test") == 0
    net.flush()
    assert net.send() == "sent" and len(net.reactor.tcpClients) == 2
    net.reactor.advance(sessions.IDLE_TIMEOUT)                             # idle: QUIT
    net.flush()
    assert net.transfer.sessions.idle_count("dest.test") == 0 and net.sink.current == 0


def test_a_session_the_server_closed_meanwhile_is_replaced(tmp_path):
    net = Network(tmp_path)
    assert net.send() == "sent"
    server = net.pumps[0].server
    server.transport.write(b"421 4.4.2 mx.remote.test idle too long\r\n")   # unread by us when we reuse it
    server.transport.loseConnection()
    assert net.send() == "sent"
    assert len(net.reactor.tcpClients) == 2 and net.sink.saved == 2


class FakeProto:
    def __init__(self) -> None:
        self.alive = True
        self.on_lost: Any = None
        self.quits = 0

    async def quit(self) -> None:
        self.quits += 1
        self.alive = False


def test_session_cache_limits():
    clock = MemoryReactorClock()
    cache = sessions.SessionCache(clock)
    protos = [FakeProto() for _ in range(3)]
    for proto in protos:
        cache.busy("d", +1)
        cache.park("d", sessions.Parked(proto, "mx1", False, clock.seconds()))   # type: ignore[arg-type]
    assert cache.idle_count("d") == 3
    assert cache.take("d", ["mx2"], False) is None                      # another host
    verified = sessions.Parked(FakeProto(), "mx1", True, 0.0)            # type: ignore[arg-type]
    cache.busy("d", +1)
    cache.park("d", verified)
    assert cache.take("d", ["mx1"], True) is verified                    # only a verified one for MTA-STS
    cache.busy("d", +1)                                                  # a new connection is wanted...
    cache.make_room("d", 2)                                              # ...with 2 busy, 3 parked, limit 2
    assert cache.idle_count("d") == 0 and [p.quits for p in protos] == [1, 1, 1]
    cache.busy("d", -1)
    cache.busy("d", -1)
    old = FakeProto()
    clock.advance(sessions.MAX_AGE)
    cache.busy("d", +1)
    cache.park("d", sessions.Parked(old, "mx1", False, 0.0))             # type: ignore[arg-type]
    assert old.quits == 1 and cache.idle_count("d") == 0                 # too old to keep
    lost = FakeProto()
    cache.busy("d", +1)
    cache.park("d", sessions.Parked(lost, "mx1", False, clock.seconds()))   # type: ignore[arg-type]
    lost.alive = False
    lost.on_lost()                                                       # the server hung up
    assert cache.idle_count("d") == 0 and cache.take("d", ["mx1"], False) is None


class FakeResolver:
    def __init__(self, answers: dict[tuple[str, bytes], Any]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, bytes]] = []

    def __getattr__(self, method: str) -> Any:
        def lookup(name: bytes, timeout: Any = None) -> defer.Deferred:
            self.asked.append((method, name.lower()))
            found = self.answers[method, name.lower()]
            return defer.fail(found) if isinstance(found, Exception) else defer.succeed(found)
        return lookup


def rr(name: bytes, kind: int, payload: Any, ttl: int) -> dns.RRHeader:
    return dns.RRHeader(name, kind, dns.IN, ttl, payload)


def test_dns_answers_are_kept_for_their_ttl():
    clock = MemoryReactorClock()
    mail_dns = MailDNS(clock, "127.0.0.1:5353")
    soa = rr(b"test", dns.SOA, dns.Record_SOA(b"ns.test", b"root.test", minimum=5), 60)
    nx_with_soa, nx_bare = dns.Message(rCode=dns.ENAME), dns.Message(rCode=dns.ENAME)
    nx_with_soa.authority = [soa]
    fake = FakeResolver({
        ("lookupMailExchange", b"dest.test"): ([rr(b"dest.test", dns.MX, dns.Record_MX(10, b"mx.dest.test"), 30)],
                                               [], []),
        ("lookupAddress", b"mx.dest.test"): ([rr(b"mx.dest.test", dns.A, dns.Record_A("192.0.2.1"), 300)], [], []),
        ("lookupIPV6Address", b"mx.dest.test"): ([], [soa], []),                   # NODATA: SOA minimum
        ("lookupText", b"_dmarc.gone.test"): error.DNSNameError(nx_with_soa),
        ("lookupText", b"_dmarc.bare.test"): error.DNSNameError(nx_bare),
        ("lookupText", b"flaky.test"): error.DNSQueryTimeoutError(None),
    })
    mail_dns.resolver = fake

    def ask() -> None:
        assert resolve(mail_dns.mx("dest.test")) == [(10, "mx.dest.test")]
        assert resolve(mail_dns.addresses("MX.dest.test.")) == ["192.0.2.1"]
        for name in ("_dmarc.gone.test", "_dmarc.bare.test"):
            assert resolve(mail_dns.txt_or_empty(name)) == []
        with pytest.raises(DNSTempError):
            resolve(mail_dns.txt("flaky.test"))

    ask()
    assert len(fake.asked) == 6
    ask()                                        # cached: NXDOMAIN without an SOA and failures are asked again
    assert fake.asked[6:] == [("lookupText", b"_dmarc.bare.test"), ("lookupText", b"flaky.test")]
    clock.advance(5)                             # AAAA NODATA and the NXDOMAIN (SOA minimum 5) expire
    del fake.asked[:]
    ask()
    assert sorted(fake.asked) == sorted([("lookupIPV6Address", b"mx.dest.test"), ("lookupText", b"_dmarc.gone.test"),
                                         ("lookupText", b"_dmarc.bare.test"), ("lookupText", b"flaky.test")])
    clock.advance(30)                            # the MX too
    del fake.asked[:]
    resolve(mail_dns.mx("dest.test"))
    assert fake.asked == [("lookupMailExchange", b"dest.test")]
    with pytest.raises(NoSuchDomain):
        resolve(mail_dns.txt("_dmarc.gone.test"))


@pytest.fixture(scope="module")
def rsa_key() -> tuple[tau_dkim.DkimKey, str]:
    pem, public = tau_dkim.generate("rsa")
    return tau_dkim.DkimKey("example.test", "sel", "rsa", pem), public


def test_rsa_signature_is_dkimpys(rsa_key, monkeypatch):
    key, public = rsa_key
    monkeypatch.setattr("time.time", lambda: 1700000000)
    ours = tau_dkim.sign(MESSAGE, [key])
    theirs = dkim.sign(MESSAGE, b"sel", b"example.test", key.private, canonicalize=(b"relaxed", b"relaxed"),
                       include_headers=[b"from", b"to", b"subject", b"message-id"], linesep=b"\r\n")
    assert ours == theirs
    record = tau_dkim.txt_record("rsa", public).encode()
    assert dkim.verify(ours + MESSAGE, dnsfunc=lambda name, timeout=5: record)
    assert tau_dkim.sign(MESSAGE, [tau_dkim.DkimKey("example.test", "sel", "rsa", b"not a key")]) == b""
