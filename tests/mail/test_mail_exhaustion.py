"""Issue 13, item 7 on SMTP and IMAP, in-process: per-address connection caps answered with the
protocol's own refusal (``421 4.7.0`` / ``* BYE``), trusted networks exempt, IPv6 counted per /64,
a total cap; and slow senders (a command line, a DATA message, an IMAP line or literal trickling
in) cut after ``[limits] line_timeout`` / ``data_timeout`` with ``421 4.4.2`` / ``* BYE``."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tau.app.connlimit import CappedFactory, ConnectionCaps, Refusal, address_key
from tests.support.harness import add_user
from tests.support.imap import IMAPEnv
from tests.support.smtp import Client, mail_store, make_factory

ATTACKER = "203.0.113.66"


@pytest.fixture
def store(registry):
    add_user(registry, "alice@example.test", fast_hash=True)
    return mail_store(registry)


def caps(**per_ip: int) -> ConnectionCaps:
    return ConnectionCaps({"smtp": 50, "imap": 50, "http": 100, **per_ip}, 10_000, ["127.0.0.1/32", "::1"])


def connect(factory, ip: str, port: int = 40000):
    addr = (IPv6Address if ":" in ip else IPv4Address)("TCP", ip, port)
    transport = StringTransport(peerAddress=addr)
    protocol = factory.buildProtocol(addr)
    protocol.makeConnection(transport)
    return protocol, transport


def lose(protocol) -> None:
    protocol.connectionLost(Failure(ConnectionDone()))


# -- connection caps -----------------------------------------------------------------------------

def test_smtp_connection_over_the_cap_gets_421_and_is_closed(registry, store) -> None:
    shared = caps(smtp=3)
    mx = CappedFactory(make_factory(registry, store, "smtp"), shared, "smtp", registry.reactor)
    sub = CappedFactory(make_factory(registry, store, "submission"), shared, "smtp", registry.reactor)
    held = [connect(mx, ATTACKER) for _ in range(3)]
    assert all(t.value().startswith(b"220 ") for _, t in held)
    protocol, transport = connect(mx, ATTACKER)
    assert isinstance(protocol, Refusal)               # no SMTP session was even built
    assert transport.value() == b"421 4.7.0 Too many connections from your address; try again later\r\n"
    assert transport.disconnecting
    assert isinstance(connect(sub, ATTACKER)[0], Refusal)       # the SMTP listeners share the count
    assert connect(mx, "198.51.100.8")[1].value().startswith(b"220 ")
    lose(held[0][0])
    assert connect(sub, ATTACKER)[1].value().startswith(b"220 ")
    assert shared.count("smtp", ATTACKER) == 3


def test_a_refusal_the_client_does_not_take_is_aborted(registry, store) -> None:
    mx = CappedFactory(make_factory(registry, store, "smtp"), caps(smtp=1), "smtp", registry.reactor)
    connect(mx, ATTACKER)
    protocol, transport = connect(mx, ATTACKER)
    assert transport.disconnecting and not transport.disconnected
    registry.reactor.advance(10)
    assert transport.disconnected                     # abortConnection: not held open by a full window


def test_one_hundred_connections_from_a_trusted_address_are_all_served(registry, store) -> None:
    mx = CappedFactory(make_factory(registry, store, "smtp"), caps(smtp=2), "smtp", registry.reactor)
    conns = [connect(mx, "127.0.0.1") for _ in range(100)] + [connect(mx, "::1") for _ in range(5)]
    assert all(t.value().startswith(b"220 ") and not t.disconnecting for _, t in conns)
    # 127.0.0.2 is not in this test's trusted networks (only 127.0.0.1/32 and ::1): capped at 2
    assert [isinstance(connect(mx, "127.0.0.2")[0], Refusal) for _ in range(3)] == [False, False, True]


def test_imap_connection_over_the_cap_gets_bye(registry) -> None:
    env = IMAPEnv(registry)
    factory = CappedFactory(env.factory, caps(imap=2), "imap", registry.reactor)
    held = [connect(factory, ATTACKER) for _ in range(2)]
    assert all(t.value().startswith(b"* OK ") for _, t in held)
    protocol, transport = connect(factory, ATTACKER)
    assert transport.value() == b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
    assert transport.disconnecting and isinstance(protocol, Refusal)
    assert env.factory.open_connections == 2
    lose(held[1][0])
    assert env.factory.open_connections == 1
    assert connect(factory, ATTACKER)[1].value().startswith(b"* OK ")


def test_ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4(registry) -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:203.0.113.66") == ATTACKER
    factory = CappedFactory(IMAPEnv(registry).factory, caps(imap=2), "imap", registry.reactor)
    connect(factory, "2001:db8:1:2::1")
    connect(factory, "2001:db8:1:2::ffff")
    assert isinstance(connect(factory, "2001:db8:1:2:dead:beef:0:1")[0], Refusal)
    assert not isinstance(connect(factory, "2001:db8:1:3::1")[0], Refusal)


def test_total_cap_over_all_listeners(registry, store) -> None:
    shared = ConnectionCaps({"smtp": 50, "imap": 50}, 5, ["127.0.0.1/32"])
    mx = CappedFactory(make_factory(registry, store, "smtp"), shared, "smtp", registry.reactor)
    imap = CappedFactory(IMAPEnv(registry).factory, shared, "imap", registry.reactor)
    for i in range(3):
        connect(mx, f"198.51.100.{i + 1}")
    for i in range(2):
        connect(imap, f"192.0.2.{i + 1}")
    assert isinstance(connect(mx, "198.51.100.99")[0], Refusal)
    assert isinstance(connect(imap, "192.0.2.99")[0], Refusal)
    assert not isinstance(connect(imap, "127.0.0.1")[0], Refusal)     # trusted: counted, never refused


def test_listeners_made_by_the_host_are_capped_with_the_configured_limits(tmp_path, db_url) -> None:
    from twisted.application.service import MultiService
    from twisted.internet.ssl import CertificateOptions
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from tau.app.host import AppHost
    from tau.mail.imap import service as imap_service
    from tau.mail.smtp import service as smtp_service
    from tests.support.harness import make_registry

    registry = make_registry(tmp_path / "tau", db_url,
                             listen={"smtp": "tcp:0:interface=127.0.0.1", "imaps": "ssl:0:interface=127.0.0.1"},
                             limits={"smtp_connections_per_ip": "7", "imap_connections_per_ip": "4",
                                     "trusted_networks": "10.0.0.0/8"})
    registry.provide("tls", CertificateOptions())
    host = AppHost(registry, MultiService(), MultiService())
    try:
        smtp_service.install(registry, host)
        imap_service.install(registry, host)
        smtp = host.listeners["smtp"].factory
        assert isinstance(smtp, CappedFactory) and smtp.family == "smtp"
        imaps = host.listeners["imaps"].factory                  # the cap outside, TLS inside
        assert isinstance(imaps, CappedFactory) and imaps.caps is smtp.caps
        assert isinstance(imaps.wrappedFactory, TLSMemoryBIOFactory) and imaps.served.refusal.startswith(b"* BYE")
        assert smtp.caps.per_ip == {"smtp": 7, "imap": 4, "http": 100}
        assert smtp.caps.is_trusted("10.1.2.3") and not smtp.caps.is_trusted("127.0.0.1")
    finally:
        registry.db.close()


# -- slow senders: SMTP --------------------------------------------------------------------------

def trickle(send, data: bytes, clock, every: float, closed) -> float:
    """Send ``data`` a byte every ``every`` seconds until the server closes; seconds it took."""
    start = clock.seconds()
    for byte in data:
        send(bytes([byte]))
        clock.advance(every)
        if closed():
            break
    return clock.seconds() - start


def test_a_trickling_smtp_command_line_is_cut_with_421(registry, store) -> None:
    c = Client(make_factory(registry, store, "smtp"), ip=ATTACKER)
    c.ehlo()
    line = b"MAIL FROM:<" + b"x" * 300 + b"@remote.test>\r\n"
    took = trickle(c.protocol.dataReceived, line, registry.reactor, 5, lambda: c.closed)
    assert c.closed and took <= 65              # 60 s line_timeout, although each byte reset the idle timer
    replies = c.read()
    assert replies[-1].code == 421 and replies[-1].text.startswith("4.4.2")


def test_a_slow_but_timely_smtp_session_is_not_cut(registry, store) -> None:
    c = Client(make_factory(registry, store, "smtp"), ip=ATTACKER)
    lines = (b"EHLO client.remote.test\r\n", b"MAIL FROM:<a@remote.test>\r\n", b"RCPT TO:<alice@example.test>\r\n")
    for piece in lines:
        trickle(c.protocol.dataReceived, piece, registry.reactor, 1.5, lambda: c.closed)   # ~45 s a line
    assert not c.closed and [r.code for r in c.read()][-3:] == [250, 250, 250]


def test_a_message_trickled_line_by_line_is_cut_after_data_timeout(registry, store) -> None:
    clock = registry.reactor
    c = Client(make_factory(registry, store, "smtp"), ip=ATTACKER)
    c.ehlo()
    replies = c.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert [r.code for r in replies] == [250, 250, 354]
    limit = registry.config.limits.data_timeout
    lines = 0
    while not c.closed and lines < 1000:
        c.protocol.dataReceived(b"x\r\n")        # every line is complete, each well inside 60 s
        clock.advance(30)
        lines += 1
    assert c.closed and limit <= lines * 30 <= limit + 30
    assert c.read()[-1].code == 421


# -- slow senders: IMAP --------------------------------------------------------------------------

def test_a_trickling_imap_command_line_is_cut_with_bye(registry) -> None:
    env = IMAPEnv(registry)
    c = env.client(peer=ATTACKER)
    took = trickle(c.proto.dataReceived, b"a1 LOGIN " + b"x" * 100, registry.reactor, 3, lambda: c.closed)
    assert c.closed and took <= 63
    assert c.output().endswith(b"* BYE Timeout: command not received in time\r\n")


def test_a_trickling_imap_literal_is_cut_after_data_timeout(registry) -> None:
    env = IMAPEnv(registry)
    user = env.add_user("bob@example.test")
    c = env.client(user, peer=ATTACKER)
    limit = registry.config.limits.data_timeout
    assert c.send(b"a1 APPEND INBOX {100000}\r\n").startswith(b"+ ")
    took = trickle(c.proto.dataReceived, b"y" * 100000, registry.reactor, 20, lambda: c.closed)
    assert c.closed and limit <= took <= limit + 20
    assert b"* BYE Timeout" in c.output()


def test_idle_done_and_timely_commands_are_not_cut(registry) -> None:
    env = IMAPEnv(registry)
    user = env.add_user("carol@example.test")
    c = env.client(user, peer=ATTACKER, mailbox="INBOX")
    assert c.send(b"i1 IDLE\r\n").startswith(b"+ ")
    registry.reactor.advance(25 * 60)         # idling is not sending: only the idle timeout applies
    assert not c.closed
    assert b"i1 OK" in c.send(b"DONE\r\n")
    for piece in (b"a2 NOOP", b"\r\n"):
        c.proto.dataReceived(piece)
        registry.reactor.advance(50)
    assert not c.closed and b"a2 OK" in c.output()
