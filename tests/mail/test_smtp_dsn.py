"""The DSN extension (RFC 3461) on the MX and submission: RET/ENVID/NOTIFY/ORCPT parsed, checked
(xtext, ``501 5.5.4``), kept per recipient on the outbound queue row, and honoured by the delivery
worker: bounces only for NOTIFY including FAILURE (the default), none for NEVER, RET=HDRS returns
only the header, ENVID and ORCPT appear in the RFC 3464 report, NOTIFY=SUCCESS gives a ``relayed``
report for an MX without DSN (one with DSN gets the parameters passed on) and a ``delivered`` one
for a local mailbox. And REQUIRETLS (RFC 8689): only over TLS, kept on the queue row, sent only
over verified TLS to an MX that advertises it, bounced otherwise."""

from __future__ import annotations

import smtplib
import ssl
import time

import pytest

from tau.mail.smtp.dsn_params import DsnRequest
from tau.mail.store import queue as rows
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.harness import add_user
from tests.support.outbound import RemotePeer, make_tls
from tests.support.smtp import Client, DaemonStore, make_factory

ALICE, CAROL, PASSWORD = "alice@example.test", "carol@example.test", "secret-Pa55"


# -- parsing and persistence (in-process) ---------------------------------------------------------

@pytest.fixture
def submission(registry):
    add_user(registry, ALICE)
    factory = make_factory(registry, registry.mail_store, "submission")
    c = Client(factory, ip="127.0.0.1")
    c.submit_ready(ALICE, PASSWORD)
    return c


def test_ehlo_advertises_dsn(registry):
    add_user(registry, ALICE)
    c = Client(make_factory(registry, registry.mail_store, "smtp"))
    assert "DSN" in c.ehlo().lines


def test_dsn_parameters_are_persisted_per_recipient(registry, submission):
    c = submission
    assert c.cmd("MAIL FROM:<alice@example.test> RET=HDRS ENVID=QQ+2B314").code == 250
    assert c.cmd("RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+40remote.test").code == 250
    assert c.cmd("RCPT TO:<dan@remote.test> NOTIFY=NEVER").code == 250
    assert c.cmd("RCPT TO:<eve@remote.test>").code == 250
    assert c.cmd("DATA").code == 354
    assert [r.code for r in c.send(b"From: alice@example.test\r\nSubject: p\r\n\r\nhi\r\n.\r\n")] == [250]
    [row] = registry.db.sync.run("claim", rows.claim, 2**40, 10, 60)
    request = DsnRequest.from_json(row.dsn)
    assert (request.ret, request.envid) == ("HDRS", "QQ+2B314")
    assert request.rcpt("bob@remote.test").notify == ("SUCCESS", "FAILURE")
    assert request.rcpt("bob@remote.test").orcpt == "rfc822;Bob+40remote.test"
    assert request.rcpt("dan@remote.test").notify == ()
    assert request.rcpt("eve@remote.test").wants("FAILURE") and request.rcpt("eve@remote.test").wants("DELAY")
    assert not request.rcpt("eve@remote.test").wants("SUCCESS")


@pytest.mark.parametrize("line", [
    "MAIL FROM:<alice@example.test> ENVID=a=b",          # "=" is not an xchar
    "MAIL FROM:<alice@example.test> ENVID=a+zz",         # "+" needs two upper-case hex digits
    "MAIL FROM:<alice@example.test> ENVID=a+2b",
    "MAIL FROM:<alice@example.test> RET=BODY",
    "MAIL FROM:<alice@example.test> ENVID=" + "x" * 101,
])
def test_bad_mail_parameters_are_501(submission, line):
    reply = submission.cmd(line)
    assert (reply.code, reply.text[:5]) == (501, "5.5.4")


@pytest.mark.parametrize("params", ["NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES", "NOTIFY=", "ORCPT=bob@remote.test",
                                    "ORCPT=rfc822;bob=x@remote.test", "ORCPT=rfc822;a+1"])
def test_bad_rcpt_parameters_are_501(submission, params):
    assert submission.cmd("MAIL FROM:<alice@example.test>").code == 250
    reply = submission.cmd(f"RCPT TO:<bob@remote.test> {params}")
    assert (reply.code, reply.text[:5]) == (501, "5.5.4")
    assert submission.cmd("RCPT TO:<bob@remote.test> NOTIFY=FAILURE,DELAY").code == 250


def test_requiretls_is_offered_and_accepted_only_over_tls(registry):
    add_user(registry, ALICE)
    c = Client(make_factory(registry, registry.mail_store, "smtp"))
    assert "REQUIRETLS" not in c.ehlo().lines
    reply = c.cmd("MAIL FROM:<x@remote.test> REQUIRETLS")
    assert (reply.code, reply.text[:6]) == (530, "5.7.10")
    assert "REQUIRETLS" in c.starttls().lines
    assert c.cmd("MAIL FROM:<x@remote.test> REQUIRETLS=yes").code == 501
    assert c.cmd("MAIL FROM:<x@remote.test> REQUIRETLS").code == 250


def test_requiretls_is_persisted(registry, submission):
    c = submission
    assert [r.code for r in c.mail(ALICE, ["bob@remote.test"], b"Subject: t\r\n\r\nhi\r\n", "REQUIRETLS")] \
        == [250, 250, 354, 250]
    [row] = registry.db.sync.run("claim", rows.claim, 2**40, 10, 60)
    assert row.require_tls is True


# -- behaviour, against a running daemon and a remote MX on loopback -------------------------------

@pytest.fixture(scope="module", params=engines())
def world(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"dsn-{request.param}")
    url = daemon_database_url(request)
    daemon = TauDaemon(folder, database_url=url, listeners=("smtp", "submission", "http"))
    daemon.init()
    for user in (ALICE, CAROL):
        daemon.add_user(user)
    zone = {"remote.test": [["MX", 10, "mx.remote.test"]], "mx.remote.test": [["A", "127.0.0.1"]],
            "dsn.test": [["MX", 10, "mx.dsn.test"]], "mx.dsn.test": [["A", "127.0.0.2"]],
            "rtls.test": [["MX", 10, "mx.rtls.test"]], "mx.rtls.test": [["A", "127.0.0.3"]]}
    ca, cert, key = make_tls(folder, ["mx.remote.test", "mx.dsn.test", "mx.rtls.test"])
    peer = RemotePeer(folder, zone, dsn_addresses=["127.0.0.2"], requiretls_addresses=["127.0.0.3"],
                      tls_cert=str(cert), tls_key=str(key)).start()
    daemon.env.update({"TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{peer.dns_port}",
                       "TAU_OUTBOUND_PORT": str(peer.smtp_port), "TAU_OUTBOUND_POLL_INTERVAL": "1",
                       "TAU_OUTBOUND_RETRY_BASE": "1", "TAU_DKIM_SIGN": "false",
                       "TAU_OUTBOUND_DELAY_WARNING": "1", "TAU_OUTBOUND_TLS_CA_FILE": str(ca)})
    daemon.start("smtp")
    store = DaemonStore(daemon)
    yield daemon, peer, store
    store.close()
    daemon.stop()
    peer.stop()


def send(daemon: TauDaemon, subject: str, rcpts: dict[str, str], mail_params: str = "", to: str = "",
         sender: str = ALICE) -> None:
    """Submit one message as ``sender``; ``rcpts`` maps each recipient to its RCPT parameters."""
    body = (f"From: {sender}\r\nTo: {to or ', '.join(rcpts)}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.test>\r\n\r\nBODY-MARKER of {subject}\r\n").encode()
    ctx = ssl.create_default_context(cafile=str(daemon.data / "tls/cert.pem"))
    with smtplib.SMTP("localhost", daemon.ports["submission"], timeout=10) as s:
        s.starttls(context=ctx)
        s.login(sender, PASSWORD)
        assert s.has_extn("dsn")
        assert s.mail(sender, mail_params.split() if mail_params else [])[0] == 250
        for rcpt, params in rcpts.items():
            assert s.rcpt(rcpt, params.split() if params else [])[0] == 250
        assert s.data(body)[0] == 250


def report(store: DaemonStore, subject: str, user: str = ALICE, timeout: float = 30) -> str:
    """The DSN in ``user``'s INBOX about the message with ``subject``."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in store.messages(user) if b"report-type=delivery-status" in m
                 and f"Subject: {subject}\r\n".encode() in m]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, f"{len(found)} reports about {subject}"
            return found[0].decode()
        time.sleep(0.2)


def status_part(text: str) -> str:
    return text.split("Content-Type: message/delivery-status\r\n\r\n", 1)[1].split("\r\n--", 1)[0]


@pytest.mark.e2e
def test_notify_never_suppresses_the_bounce(world):
    daemon, peer, store = world
    send(daemon, "never", {"reject-quiet@remote.test": "NOTIFY=NEVER", "reject-loud@remote.test": ""})
    text = report(store, "never")
    assert "Final-Recipient: rfc822; reject-loud@remote.test" in text and "Action: failed" in text
    assert "reject-quiet" not in status_part(text)


@pytest.mark.e2e
def test_ret_hdrs_bounce_has_no_body_and_names_envid_and_orcpt(world):
    daemon, peer, store = world
    send(daemon, "hdrs", {"reject-h@remote.test": "NOTIFY=FAILURE ORCPT=rfc822;Reject-H+40remote.test"},
         "RET=HDRS ENVID=env+2B42")
    text = report(store, "hdrs")
    assert "Content-Type: text/rfc822-headers" in text
    assert "BODY-MARKER" not in text
    status = status_part(text)
    assert "Original-Envelope-Id: env+2B42\r\n" in status
    assert "Original-Recipient: rfc822; Reject-H+40remote.test\r\n" in status


@pytest.mark.e2e
def test_ret_full_bounce_returns_the_message(world):
    daemon, peer, store = world
    send(daemon, "full", {"reject-f@remote.test": ""}, "RET=FULL")
    text = report(store, "full")
    assert "Content-Type: message/rfc822" in text and "BODY-MARKER of full" in text


@pytest.mark.e2e
def test_notify_success_relayed_to_a_server_without_dsn(world):
    daemon, peer, store = world
    send(daemon, "relayed", {"bob@remote.test": "NOTIFY=SUCCESS", "dora@dsn.test": "NOTIFY=SUCCESS"},
         "ENVID=rel1")
    text = report(store, "relayed")
    status = status_part(text)
    assert "Final-Recipient: rfc822; bob@remote.test\r\nAction: relayed\r\nStatus: 2.0.0" in status
    assert "dora@dsn.test" not in status                 # its MX speaks DSN: the report is its job
    assert "Original-Envelope-Id: rel1" in status
    [env] = [e for e, m in peer.messages() if e["rcpts"] == ["dora@dsn.test"]]
    assert [a for a in env["mail_args"].split() if not a.startswith("SIZE=")] == ["ENVID=rel1"]
    assert env["rcpt_args"] == ["NOTIFY=SUCCESS ORCPT=rfc822;dora@dsn.test"]
    [plain] = [e for e, m in peer.messages() if e["rcpts"] == ["bob@remote.test"]]
    assert plain["rcpt_args"] == [""]                     # no DSN advertised: nothing passed on


@pytest.mark.e2e
def test_notify_success_for_a_local_mailbox_is_delivered(world):
    daemon, peer, store = world
    send(daemon, "local", {CAROL: "NOTIFY=SUCCESS ORCPT=rfc822;carol+40example.test"})
    text = report(store, "local")
    status = status_part(text)
    assert "Original-Recipient: rfc822; carol+40example.test\r\nFinal-Recipient: rfc822; carol@example.test" \
           "\r\nAction: delivered" in status


@pytest.mark.e2e
def test_no_success_report_by_default(world):
    daemon, peer, store = world
    send(daemon, "quiet-ok", {"bob2@remote.test": "", CAROL: ""})
    send(daemon, "marker", {"reject-m@remote.test": ""})      # a later report: the earlier one had its time
    report(store, "marker")
    assert not [m for m in store.messages(ALICE) if b"Subject: quiet-ok\r\n" in m]


@pytest.mark.e2e
def test_delay_notice_only_when_notify_allows_it(world):
    daemon, peer, store = world
    send(daemon, "delay-quiet", {"tempfail-q@remote.test": "NOTIFY=FAILURE"})
    send(daemon, "delay-loud", {"tempfail-l@remote.test": ""})        # default: failure and delay
    assert "Action: delayed" in status_part(report(store, "delay-loud"))
    deadline = time.monotonic() + 40                                   # both get through on the third try
    while len([e for e, m in peer.messages() if e["rcpts"][0].startswith("tempfail-")]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert not [m for m in store.messages(ALICE) if b"Subject: delay-quiet\r\n" in m]


@pytest.mark.e2e
def test_requiretls_bounces_when_the_mx_does_not_offer_it(world):
    daemon, peer, store = world
    send(daemon, "rtls-no", {"bob-rtls@remote.test": ""}, "REQUIRETLS")     # verified TLS, no REQUIRETLS
    status = status_part(report(store, "rtls-no"))
    assert "Action: failed" in status and "Status: 5.7.10" in status
    assert not [e for e, m in peer.messages() if e["rcpts"] == ["bob-rtls@remote.test"]]


@pytest.mark.e2e
def test_requiretls_goes_over_verified_tls_to_an_mx_that_offers_it(world):
    daemon, peer, store = world
    send(daemon, "rtls-yes", {"rita@rtls.test": ""}, "REQUIRETLS")
    deadline = time.monotonic() + 30
    while not (found := [e for e, m in peer.messages() if e["rcpts"] == ["rita@rtls.test"]]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert found[0]["tls"] is True and "REQUIRETLS" in found[0]["mail_args"].split()
