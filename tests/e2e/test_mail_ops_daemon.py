"""Operating mail on the real daemon (issue 18, items 2-4): one ``key=value`` log line per delivery
attempt and per accepted message, no per-lookup noise, the queue tools (``tau queue`` and
``/api/admin/queue``), and mail series on ``/metrics`` after real SMTP and IMAP traffic.

The remote world: a DNS server with the test zones and an SMTP sink as ``mx.remote.test``
(``reject-me@`` gets a 5xx); ``down.test``'s MX is an address nothing listens on, so its mail
stays deferred (the retry base is long: the row is stable between attempts).
"""

from __future__ import annotations

import imaplib
import json
import re
import smtplib
import ssl
import time

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.outbound import RemotePeer

pytestmark = pytest.mark.e2e
ALICE, ADMIN, PASSWORD = "alice@example.test", "admin@example.test", "secret-Pa55"


@pytest.fixture(scope="module", params=engines())
def world(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"mailops-{request.param}")
    url = daemon_database_url(request)
    daemon = TauDaemon(folder, database_url=url, listeners=("smtp", "submission", "imap", "http"))
    daemon.init()
    daemon.add_user(ALICE)
    daemon.cli("user", "add", ADMIN, "--admin", "--password-stdin", input=PASSWORD.encode() + b"\n")
    zone = {
        "remote.test": [["MX", 10, "mx.remote.test"]], "mx.remote.test": [["A", "127.0.0.1"]],
        "down.test": [["MX", 10, "mx.down.test"]], "mx.down.test": [["A", "127.0.0.2"]],
        "spf-pass.test": [["TXT", "v=spf1 ip4:127.0.0.0/8 -all"]],
        "_dmarc.spf-pass.test": [["TXT", "v=DMARC1; p=none"]],
        "spf-fail.test": [["TXT", "v=spf1 ip4:192.0.2.1 -all"]],
    }
    peer = RemotePeer(folder, zone).start()
    daemon.env.update({
        "TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{peer.dns_port}", "TAU_OUTBOUND_PORT": str(peer.smtp_port),
        "TAU_OUTBOUND_POLL_INTERVAL": "1", "TAU_OUTBOUND_RETRY_BASE": "3000",
        "TAU_OUTBOUND_CONNECT_TIMEOUT": "2"})
    daemon.start("smtp")
    yield daemon, peer
    daemon.stop()
    peer.stop()


def submit(daemon: TauDaemon, rcpts: list[str], subject: str) -> None:
    body = (f"From: {ALICE}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.test>\r\n\r\nHello.\r\n").encode()
    ctx = ssl.create_default_context(cafile=str(daemon.data / "tls/cert.pem"))
    with smtplib.SMTP("localhost", daemon.ports["submission"], timeout=10) as s:
        s.starttls(context=ctx)
        s.login(ALICE, PASSWORD)
        s.sendmail(ALICE, rcpts, body)


def mx_send(daemon: TauDaemon, mail_from: str, subject: str) -> int:
    body = (f"From: {mail_from}\r\nTo: {ALICE}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x.test>\r\n"
            "\r\nhi\r\n").encode()
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=30) as s:
        try:
            s.sendmail(mail_from, [ALICE], body)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code
    return 250


def log_messages(daemon: TauDaemon) -> list[str]:
    out = []
    for line in daemon.log.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line)["msg"])
        except (ValueError, KeyError):
            out.append(line)
    return out


def wait_for_line(daemon: TauDaemon, pattern: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in log_messages(daemon) if re.search(pattern, m)]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no log line matches {pattern!r}"
        time.sleep(0.2)


def fields(line: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))


def queue_json(daemon: TauDaemon, *args: str) -> list[dict]:
    return json.loads(daemon.cli("queue", "list", "--json", *args).stdout)


def deferred_row(daemon: TauDaemon, subject: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        rows = [r for r in queue_json(daemon) if r["message_id"] == f"<{subject}@example.test>"]
        if rows and rows[0]["state"] == "queued" and rows[0]["attempts"] >= 1:
            return rows[0]
        assert time.monotonic() < deadline, rows
        time.sleep(0.3)


def test_each_delivery_attempt_is_one_status_line(world):
    daemon, peer = world
    submit(daemon, ["bob@remote.test", "reject-me@remote.test"], "status-lines")
    sent = fields(wait_for_line(daemon, r"^delivery .*to=<bob@remote\.test>"))
    assert sent["status"] == "sent" and sent["from"] == f"<{ALICE}>" and sent["queue_id"].isdigit()
    assert sent["relay"] == "mx.remote.test[127.0.0.1]" and sent["tls"] in ("none", "TLSv1.2", "TLSv1.3")
    assert sent["reply"].startswith('"250') and int(sent["delay"]) >= 0 and sent["attempts"] == "1"
    bounced = fields(wait_for_line(daemon, r"^delivery .*to=<reject-me@remote\.test>"))
    assert bounced["status"] == "bounced" and bounced["reply"].startswith('"55')
    submit(daemon, ["carol@down.test"], "status-deferred")
    deferred = fields(wait_for_line(daemon, r"^delivery .*to=<carol@down\.test>"))
    assert deferred["status"] == "deferred" and deferred["relay"] == "none" and deferred["reply"].startswith('"4')


def test_accepted_inbound_mail_is_one_line_with_its_checks(world):
    daemon, _ = world
    assert mx_send(daemon, "news@spf-pass.test", "inbound-line") == 250
    line = fields(wait_for_line(daemon, r"^smtp accepted .*message_id=<inbound-line@x\.test>"))
    assert line["listener"] == "mx" and line["from"] == "<news@spf-pass.test>" and line["to"] == f"<{ALICE}>"
    assert line["client"].endswith("[127.0.0.1]") and int(line["size"]) > 0 and line["queue_id"]
    assert line["spf"] == "pass" and line["dkim"] == "none" and line["dmarc"] == "pass"
    assert line["spam"] == "unchecked" and line["folder"] == "INBOX"


def test_no_line_per_dns_lookup_or_client_factory(world):
    daemon, _ = world
    wait_for_line(daemon, r"^delivery ")
    noise = [m for m in log_messages(daemon) if "Protocol starting on" in m or m.startswith("Starting factory")
             or "(UDP Port" in m]
    assert noise == []


def test_queue_cli_hold_release_retry_delete(world):
    daemon, _ = world
    submit(daemon, ["dave@down.test"], "queue-cli")
    row = deferred_row(daemon, "queue-cli")
    qid = str(row["id"])
    assert row["rcpt_to"] == ["dave@down.test"] and row["mail_from"] == ALICE
    listing = daemon.cli("queue", "list").stdout.decode()
    assert re.search(rf"^{qid}\s+queued\s+\d+\s+.*{ALICE}\s+dave@down\.test$", listing, re.M), listing
    shown = daemon.cli("queue", "show", qid).stdout.decode()
    assert re.search(r"^state\s+queued$", shown, re.M) and re.search(r"^attempts\s+1$", shown, re.M), shown
    assert re.search(r"^rcpt dave@down\.test\s+retry 451 4\.4\.1 ", shown, re.M), shown
    assert daemon.cli("queue", "hold", qid).returncode == 0
    assert [r["state"] for r in queue_json(daemon, "--state", "held")] == ["held"]
    assert daemon.cli("queue", "release", qid).returncode == 0
    assert daemon.cli("queue", "release", qid, check=False).returncode == 1      # not held any more
    retried = daemon.cli("queue", "retry", "--all").stdout.decode()
    assert re.match(r"\d+ messages? due now", retried)
    for _ in range(50):  # "retry --all" made it due: the queue may be trying it right now
        deleted = daemon.cli("queue", "delete", qid, check=False)
        if deleted.returncode == 0:
            break
        assert "being delivered right now; try again shortly" in deleted.stderr.decode()
        time.sleep(0.2)
    assert deleted.returncode == 0, deleted.stderr
    assert [r for r in queue_json(daemon) if str(r["id"]) == qid] == []
    gone = daemon.cli("queue", "show", qid, check=False)
    assert gone.returncode == 1 and gone.stderr.decode().startswith("tau: no queued message")


def test_admin_api_queue_actions(world):
    daemon, _ = world
    token = daemon.token(ADMIN)
    submit(daemon, ["erin@down.test"], "queue-api")
    qid = deferred_row(daemon, "queue-api")["id"]
    status, _, body = daemon.http("POST", f"/api/admin/queue/{qid}/hold", token=token)
    assert status == 200 and json.loads(body)["state"] == "held"
    status, _, body = daemon.http("GET", "/api/admin/queue?status=held", token=token)
    listing = json.loads(body)
    assert [i["id"] for i in listing["items"]] == [qid] and listing["counts"]["held"] == 1
    status, _, body = daemon.http("GET", f"/api/admin/queue/{qid}", token=token)
    assert status == 200 and json.loads(body)["rcpt_to"] == ["erin@down.test"]
    status, _, body = daemon.http("POST", f"/api/admin/queue/{qid}/release", token=token)
    assert status == 200 and json.loads(body)["state"] == "queued"
    status, _, body = daemon.http("POST", "/api/admin/queue/retry", token=token)
    assert status == 200 and json.loads(body)["retried"] >= 0
    status, _, body = daemon.http("GET", "/api/admin/queue?status=bogus", token=token)
    assert status == 400 and json.loads(body)["error"] == "invalid_status"
    deadline = time.monotonic() + 10
    while (status := daemon.http("DELETE", f"/api/admin/queue/{qid}", token=token)[0]) == 409:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status == 204
    assert daemon.http("GET", f"/api/admin/queue/{qid}", token=token)[0] == 404


def sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] == name and (not labels or all(f'{k}="{v}"' in series for k, v in labels.items())):
            return float(value)
    raise AssertionError(f"{name}{{{want}}} not exposed")


def test_metrics_after_smtp_and_imap_traffic(world):
    daemon, _ = world
    submit(daemon, ["frank@remote.test"], "metrics-sent")
    wait_for_line(daemon, r"^delivery .*to=<frank@remote\.test> .*status=sent")
    assert mx_send(daemon, "x@spf-fail.test", "metrics-spf-fail") == 550
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as s:
        s.ehlo("client.test")
        assert s.docmd("MAIL FROM:<a@spf-pass.test>")[0] == 250
        assert s.docmd("RCPT TO:<nobody@example.test>")[0] == 550
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    with pytest.raises(imaplib.IMAP4.error):
        imap.login(ALICE, "wrong-password")
    imap.login(ALICE, PASSWORD)
    status, _, body = daemon.http("GET", "/metrics")
    text = body.decode()
    imap.logout()
    assert status == 200
    assert sample(text, "tau_mail_deliveries_total", status="sent") >= 1
    assert sample(text, "tau_mail_inbound_accepted_total", listener="submission") >= 1
    assert sample(text, "tau_mail_inbound_rejected_total", reason="spf") >= 1
    assert sample(text, "tau_mail_inbound_rejected_total", reason="unknown_user") >= 1
    assert sample(text, "tau_mail_auth_results_total", method="spf", result="fail") >= 1
    assert sample(text, "tau_mail_spam_verdicts_total", verdict="unchecked") >= 1
    assert sample(text, "tau_logins_total", protocol="imap", outcome="failed") >= 1
    assert sample(text, "tau_connections", protocol="imap") >= 1
    assert sample(text, "tau_connections", protocol="websocket") == 0
    assert sample(text, "tau_mail_queue_messages", state="sent") >= 1
    assert sample(text, "tau_mail_queue_messages", state="held") == 0


def test_websocket_sessions_are_a_gauge(world):
    import asyncio

    from tau.client import Socket

    daemon, _ = world
    token = daemon.token(ALICE)

    async def scenario() -> tuple[float, float]:
        sock = await Socket.connect(daemon.url, "/ws/messages", token)
        await sock.recv_type("synced")
        during = sample(daemon.http("GET", "/metrics")[2].decode(), "tau_connections", protocol="websocket")
        await sock.close()
        deadline = time.monotonic() + 5
        while True:
            after = sample(daemon.http("GET", "/metrics")[2].decode(), "tau_connections", protocol="websocket")
            if after == 0 or time.monotonic() > deadline:
                return during, after
            await asyncio.sleep(0.1)

    assert asyncio.run(asyncio.wait_for(scenario(), 60)) == (1.0, 0.0)
