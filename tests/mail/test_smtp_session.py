"""SMTP session behaviour in-process: EHLO keywords, limits, bad commands, STARTTLS, timeouts."""

from __future__ import annotations

import pytest

from tau.mail.smtp.service import ConnectionLimiter
from tests.support.harness import add_user
from tests.support.smtp import Client, mail_store, make_factory


@pytest.fixture
def store(registry):
    add_user(registry, "alice@example.test")
    return mail_store(registry)


@pytest.fixture
def mx(registry, store):
    return make_factory(registry, store, "smtp")


def keywords(reply) -> set[str]:
    return {line.split(" ")[0] for line in reply.lines[1:]}


def test_greeting_and_ehlo_keywords_on_mx(mx, registry):
    c = Client(mx)
    assert c.greeting[0].code == 220 and "ESMTP" in c.greeting[0].text
    reply = c.ehlo()
    assert reply.code == 250
    assert {"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING",
            "STARTTLS"} <= keywords(reply)
    assert f"SIZE {registry.config.limits.message_size}" in reply.lines
    assert "AUTH" not in keywords(reply)                    # MX never offers AUTH


def test_submission_advertises_auth_only_after_tls(registry, store):
    c = Client(make_factory(registry, store, "submission"))
    before = c.ehlo()
    assert "AUTH" not in keywords(before) and "STARTTLS" in keywords(before)
    after = c.starttls()
    assert "AUTH PLAIN LOGIN" in after.lines and "STARTTLS" not in keywords(after)
    assert c.transport.tls_started


def test_submissions_is_tls_from_the_start(registry, store):
    c = Client(make_factory(registry, store, "submissions"))
    reply = c.ehlo()
    assert "AUTH PLAIN LOGIN" in reply.lines and "STARTTLS" not in keywords(reply)
    assert c.cmd("STARTTLS").code == 503


def test_starttls_discards_pipelined_commands(registry, store):
    """RFC 3207 §5 (CVE-2011-0411): bytes sent with STARTTLS must not run after the handshake."""
    c = Client(make_factory(registry, store, "smtp"))
    c.ehlo()
    replies = c.send(b"STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\n")
    assert [r.code for r in replies] == [220]
    # the session starts over: EHLO is required again (§4.2)
    assert c.cmd("MAIL FROM:<x@remote.test>").code == 503
    assert c.ehlo().code == 250


def test_mail_before_ehlo_is_a_bad_sequence(mx):
    c = Client(mx)
    reply = c.cmd("MAIL FROM:<x@remote.test>")
    assert reply.code == 503 and reply.text.startswith("5.5.1")


@pytest.mark.parametrize("line", [b"HELLO", b"\xff\xfe garbage", b"MAIL\x00 FROM:<x@y.test>", b"GET / HTTP/1.1",
                                  b"   ", b"12345"])
def test_garbage_commands_get_500_and_the_connection_lives(mx, line):
    c = Client(mx)
    reply = c.cmd(line)
    assert reply.code == 500 and reply.text.startswith("5.5.2")
    assert not c.closed
    assert c.cmd("NOOP").code == 250


def test_command_line_too_long(mx):
    c = Client(mx)
    c.ehlo()
    reply = c.cmd(b"MAIL FROM:<" + b"a" * 600 + b"@remote.test>")
    assert (reply.code, reply.text) == (500, "5.5.2 Line too long")
    assert c.cmd("NOOP").code == 250


def test_endless_line_without_newline_is_cut_off(mx):
    c = Client(mx)
    replies = c.send(b"X" * 100_000)
    assert [(r.code, r.text) for r in replies] == [(500, "5.5.2 Line too long")]
    assert c.send(b"Y" * 50_000 + b"\r\n") == []              # the rest of that line is ignored
    assert c.cmd("NOOP").code == 250
    assert len(c.protocol._inbuf) == 0


@pytest.mark.parametrize("line, code", [
    ("MAIL FROM:", 501), ("MAIL FROM:<no-at-sign>", 501), ("MAIL FROM:<a@b.test", 501),
    ("MAIL TO:<a@b.test>", 501), ("MAIL FROM:<a@b.test> FOO=1", 555), ("MAIL FROM:<a@b.test> SIZE=abc", 501),
    ("MAIL FROM:<a@b.test> BODY=BINARYMIME", 555), ("MAIL FROM:<a@b.test> SIZE=1 SIZE=2", 501),
    ("MAIL FROM:<a..b@b.test>", 501), ("MAIL FROM:<a@-bad-.test>", 501),
])
def test_bad_mail_arguments(mx, line, code):
    c = Client(mx)
    c.ehlo()
    assert c.cmd(line).code == code


def test_size_parameter_over_the_limit(mx):
    c = Client(mx)
    c.ehlo()
    reply = c.cmd(f"MAIL FROM:<a@remote.test> SIZE={mx.max_size + 1}")
    assert (reply.code, reply.text[:5]) == (552, "5.3.4")


def test_sequence_errors(mx):
    c = Client(mx)
    c.ehlo()
    assert c.cmd("RCPT TO:<alice@example.test>").code == 503
    assert c.cmd("DATA").code == 503
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 503
    assert c.cmd("DATA").code == 554                            # no valid recipients
    assert c.cmd("RSET").code == 250
    assert c.cmd("RCPT TO:<alice@example.test>").code == 503


def test_too_many_recipients(mx):
    c = Client(mx)
    c.ehlo()
    mx.max_errors = 1000
    c.cmd("MAIL FROM:<a@remote.test>")
    replies = c.send(b"".join(b"RCPT TO:<alice@example.test>\r\n" for _ in range(101)))
    assert [r.code for r in replies[:100]] == [250] * 100
    assert (replies[100].code, replies[100].text) == (452, "4.5.3 Too many recipients")


def test_error_limit_closes_the_connection(mx):
    c = Client(mx)
    replies = c.send(b"BOGUS\r\n" * 15)
    assert [r.code for r in replies] == [500] * 10 + [421]
    assert replies[-1].text.startswith("4.7.0")
    assert c.closed


def test_connection_limit_per_ip(registry, store):
    limiter = ConnectionLimiter(3)
    factory = make_factory(registry, store, "smtp", limiter)
    clients = [Client(factory, ip="198.51.100.7") for _ in range(3)]
    assert all(c.greeting[0].code == 220 for c in clients)
    refused = Client(factory, ip="198.51.100.7")
    assert refused.greeting[0].code == 421 and refused.greeting[0].text.startswith("4.7.0") and refused.closed
    refused.disconnect()
    assert Client(factory, ip="198.51.100.8").greeting[0].code == 220   # another address is fine
    clients[0].disconnect()
    assert Client(factory, ip="198.51.100.7").greeting[0].code == 220
    # shared across listeners: submission counts against the same address
    sub = make_factory(registry, store, "submission", limiter)
    assert Client(sub, ip="198.51.100.7").greeting[0].code == 421


def test_connection_gauge(mx, registry):
    gauge = registry.metrics.connections.labels("smtp")
    before = gauge._value.get()
    c = Client(mx)
    assert gauge._value.get() == before + 1
    c.disconnect()
    assert gauge._value.get() == before


def test_idle_timeout(mx, registry):
    c = Client(mx)
    registry.reactor.advance(mx.timeout - 1)
    assert not c.closed
    c.cmd("NOOP")
    registry.reactor.advance(mx.timeout + 1)
    reply = c.read()[-1]
    assert reply.code == 421 and reply.text.startswith("4.4.2") and c.closed


def test_misc_commands(mx):
    c = Client(mx)
    c.ehlo()
    assert c.cmd("VRFY alice").code == 252                     # RFC 5321 §3.5.3: no address probing
    assert c.cmd("EXPN staff").code == 502
    assert c.cmd("HELP").code == 214
    assert c.cmd("HELO old.client").code == 250
    reply = c.cmd("QUIT")
    assert reply.code == 221 and c.closed
