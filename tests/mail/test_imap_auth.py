"""CAPABILITY, LOGIN, AUTHENTICATE PLAIN, LOGINDISABLED, throttling, ID, ENABLE, NAMESPACE,
LOGOUT (RFC 3501 §6.1-6.2, RFC 4616, RFC 4959, RFC 2971, RFC 5161, RFC 2342)."""

from __future__ import annotations

import base64

import pytest
from twisted.logger import globalLogPublisher

from tests.support.imap import IMAPEnv

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


def plain(user: str, password: str, authz: str = "") -> str:
    return base64.b64encode(f"{authz}\0{user}\0{password}".encode()).decode()


def test_capabilities_before_login_on_loopback(env):
    caps = env.client().ok("a CAPABILITY")[0].split()
    assert caps[:2] == ["*", "CAPABILITY"]
    assert {"IMAP4rev1", "STARTTLS", "AUTH=PLAIN", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"} <= set(caps)
    assert "LOGINDISABLED" not in caps


def test_logindisabled_for_remote_plaintext(env):
    c = env.client(peer="203.0.113.9")
    caps = c.ok("a CAPABILITY")[0].split()
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps and "AUTH=PLAIN" not in caps
    assert c.cmd(f"b LOGIN {ALICE} secret-Pa55")[-1] == "b NO [PRIVACYREQUIRED] Use STARTTLS first"
    assert c.cmd(f"c AUTHENTICATE PLAIN {plain(ALICE, 'secret-Pa55')}")[-1].startswith("c NO [PRIVACYREQUIRED]")
    assert c.proto.user is None


def test_capabilities_after_login(env):
    c = env.client()
    lines = c.cmd(f'a LOGIN "{ALICE}" "secret-Pa55"')
    assert lines[-1].startswith("a OK [CAPABILITY IMAP4rev1 ")
    caps = set(c.ok("b CAPABILITY")[0].split())
    assert {"IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "SPECIAL-USE", "LITERAL+", "ENABLE", "CONDSTORE", "ID",
            "UNSELECT", "CHILDREN"} <= caps
    assert "STARTTLS" not in caps and "AUTH=PLAIN" not in caps
    assert env.registry.metrics.logins.labels("imap", "ok")._value.get() == 1


def test_login_wrong_password(env):
    c = env.client()
    assert c.cmd(f"a LOGIN {ALICE} wrong")[-1] == "a NO [AUTHENTICATIONFAILED] Authentication failed"
    assert c.cmd("b LOGIN nobody@example.test wrong")[-1].startswith("b NO [AUTHENTICATIONFAILED]")
    assert c.cmd("c SELECT INBOX")[-1] == "c BAD Not authenticated"
    c.login(ALICE)  # the connection still works
    c.ok("d SELECT INBOX")


def test_login_with_literals(env):
    c = env.client()
    assert c.send(b"a LOGIN {%d}\r\n" % len(ALICE)) == b"+ Ready for literal data\r\n"
    assert c.send(ALICE.encode() + b" {11+}\r\nsecret-Pa55\r\n").startswith(b"a OK [CAPABILITY")


def test_authenticate_plain_initial_response(env):
    c = env.client()
    assert c.cmd(f"a AUTHENTICATE PLAIN {plain(ALICE, 'secret-Pa55')}")[-1].startswith("a OK [CAPABILITY")
    assert c.proto.user == ALICE


def test_authenticate_plain_continuation(env):
    c = env.client()
    assert c.send(b"a AUTHENTICATE PLAIN\r\n") == b"+ \r\n"
    assert c.send(plain(ALICE, "secret-Pa55").encode() + b"\r\n").startswith(b"a OK [CAPABILITY")


def test_authenticate_failures(env):
    c = env.client()
    c.send(b"a AUTHENTICATE PLAIN\r\n")
    assert c.send(b"*\r\n") == b"a BAD Authentication canceled\r\n"
    assert c.cmd("b AUTHENTICATE PLAIN !!notbase64")[-1].startswith("b BAD")
    assert c.cmd("c AUTHENTICATE PLAIN " + base64.b64encode(b"no-nuls").decode())[-1].startswith("c BAD")
    assert c.cmd("d AUTHENTICATE CRAM-MD5")[-1] == "d NO [CANNOT] Unsupported authentication mechanism"
    other = plain(ALICE, "secret-Pa55", authz="bob@example.test")
    assert c.cmd(f"e AUTHENTICATE PLAIN {other}")[-1].startswith("e NO [AUTHORIZATIONFAILED]")
    assert c.cmd(f"f AUTHENTICATE PLAIN {plain(ALICE, 'nope')}")[-1].startswith("f NO [AUTHENTICATIONFAILED]")
    assert c.proto.user is None


def test_bad_thousand_rapid_failed_logins_are_throttled_and_logged(env):
    events: list[dict] = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    try:
        c = env.client(peer="127.0.0.5")
        out = c.send(b"".join(b"t%d LOGIN %s wrong%d\r\n" % (i, ALICE.encode(), i) for i in range(1000)))
    finally:
        globalLogPublisher.removeObserver(observer)
    lines = out.decode().split("\r\n")[:-1]
    assert len(lines) == 1000
    failed = [x for x in lines if "[AUTHENTICATIONFAILED]" in x]
    throttled = [x for x in lines if "[UNAVAILABLE]" in x]
    assert len(failed) + len(throttled) == 1000
    assert 1 <= len(failed) <= 20 and len(throttled) >= 980
    assert not c.closed
    # even the right password is refused while throttled ...
    assert c.cmd(f"x LOGIN {ALICE} secret-Pa55")[-1].startswith("x NO [UNAVAILABLE]")
    # ... but the owner from another address still gets in
    env.client().login(ALICE)
    logged = [e for e in events if e.get("log_namespace") == "tau.mail.imap"]
    assert sum("imap_login_failed" in e.get("log_format", "") for e in logged) == len(failed)
    assert sum("imap_login_throttled" in e.get("log_format", "") for e in logged) == len(throttled)
    assert all(e.get("ip") == "127.0.0.5" for e in logged)
    metrics = env.registry.metrics.logins
    assert metrics.labels("imap", "throttled")._value.get() == len(throttled) + 1  # + the "x" attempt


def test_id(env):
    c = env.client()
    lines = c.ok('a ID ("name" "imaplib" "version" "3.11")')
    assert lines[0].startswith('* ID ("name" "tau"')
    assert c.ok("b ID NIL")[0].startswith("* ID (")
    assert c.cmd('c ID ("name")')[-1].startswith("c BAD")


def test_enable_condstore(env):
    c = env.client(ALICE)
    assert c.ok("a ENABLE CONDSTORE X-UNKNOWN") == ["* ENABLED CONDSTORE"]
    assert c.ok("b ENABLE CONDSTORE") == ["* ENABLED"]
    assert c.proto.condstore


def test_namespace(env):
    assert env.client(ALICE).ok("a NAMESPACE") == ['* NAMESPACE (("" "/")) NIL NIL']


def test_logout(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.cmd("a LOGOUT") == ["* BYE tau IMAP4rev1 server logging out", "a OK Logout completed"]
    assert c.closed


def test_starttls_not_after_login(env):
    c = env.client(ALICE)
    assert c.cmd("a STARTTLS")[-1] == "a BAD Already authenticated"


def test_implicit_tls_counts_as_tls_for_remote_peers(env):
    """imaps: the factory is wrapped in TLS by the host; LOGIN is then allowed from anywhere."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from tau.mail.imap.auth import capabilities
    from tau.net.tls import make_self_signed

    config = env.registry.config
    make_self_signed("localhost", config.data_path(config.tls.certificate),
                     config.data_path(config.tls.private_key))
    wrapped = TLSMemoryBIOFactory(env.registry.tls, False, env.factory)
    proto = wrapped.buildProtocol(None)
    proto.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "198.51.100.7", 4000)))
    conn = proto.wrappedProtocol
    assert conn.tls and not conn.loopback
    assert "AUTH=PLAIN" in capabilities(conn) and "LOGINDISABLED" not in capabilities(conn)
    assert "STARTTLS" not in capabilities(conn)
