"""Sieve against the real daemon (issue 17, item 2): scripts uploaded with sievelib's ManageSieve
client, mail delivered over SMTP, read back over IMAP; vacation answers and redirects arrive at a
remote MX (the outbound sink)."""

from __future__ import annotations

import imaplib
import json
import smtplib
import time
import urllib.request

import pytest
from sievelib.managesieve import Client

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.outbound import RemotePeer

pytestmark = pytest.mark.e2e
ALICE, CAROL, PASSWORD = "alice@example.test", "carol@example.test", "secret-Pa55"
LISTS = 'require ["fileinto"];\nif header :contains "subject" "[list]" {\n    fileinto "Lists";\n}\n'


@pytest.fixture(scope="module", params=engines())
def world(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"sieve-{request.param}")
    url = daemon_database_url(request)
    daemon = TauDaemon(folder, database_url=url, listeners=("smtp", "imap", "http", "managesieve"))
    daemon.init()
    for user in (ALICE, CAROL):
        daemon.add_user(user)
    zone = {"remote.test": [["MX", 10, "mx.remote.test"]], "mx.remote.test": [["A", "127.0.0.1"]]}
    peer = RemotePeer(folder, zone).start()
    daemon.env.update({"TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{peer.dns_port}", "TAU_OUTBOUND_PORT": str(peer.smtp_port),
                       "TAU_OUTBOUND_POLL_INTERVAL": "1", "TAU_OUTBOUND_RETRY_BASE": "1"})
    daemon.start("smtp")
    yield daemon, peer
    daemon.stop()
    peer.stop()


def sieve_client(daemon: TauDaemon, user: str) -> Client:
    client = Client("127.0.0.1", daemon.ports["managesieve"])
    assert client.connect(user, PASSWORD, authmech="PLAIN")
    return client


def deliver(daemon: TauDaemon, sender: str, rcpt: str, subject: str, extra: str = "") -> None:
    body = (f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\nMessage-ID: <{abs(hash(subject))}@remote.test>\r\n"
            f"{extra}\r\nHello.\r\n").encode()
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as s:
        s.sendmail(sender, [rcpt], body)


def subjects(daemon: TauDaemon, user: str, mailbox: str) -> list[str]:
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    try:
        imap.login(user, PASSWORD)
        status, _ = imap.select(f'"{mailbox}"', readonly=True)
        if status != "OK":
            return []
        _, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [part[1].decode().strip() for part in data if isinstance(part, tuple)]
    finally:
        imap.logout()


def arrived(peer: RemotePeer, needle: bytes, timeout: float = 20) -> list[tuple[dict, bytes]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [(e, m) for e, m in peer.messages() if needle in m]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_managesieve_script_files_list_mail_into_lists(world):
    daemon, _ = world
    client = sieve_client(daemon, ALICE)
    assert client.putscript("lists", LISTS)
    assert client.setactive("lists")
    assert client.listscripts() == ("lists", [])
    assert client.getscript("lists").strip() == LISTS.replace("\n", "\r\n").strip().replace("\r\n", "\n")
    client.logout()
    deliver(daemon, "bob@remote.test", ALICE, "[list] weekly digest")
    deliver(daemon, "bob@remote.test", ALICE, "personal note")
    assert any("[list] weekly digest" in s for s in subjects(daemon, ALICE, "Lists"))
    inbox = subjects(daemon, ALICE, "INBOX")
    assert any("personal note" in s for s in inbox) and not any("[list]" in s for s in inbox)


def test_syntax_error_is_refused_with_its_line(world):
    daemon, _ = world
    client = sieve_client(daemon, CAROL)
    broken = 'require ["fileinto"];\nif header :contains "subject" "x" {\n    fileinto "X"\n}\n'
    assert not client.putscript("broken", broken)
    assert b"line 4" in client.errmsg
    assert not client.checkscript('require ["nonsense"];\n')
    assert b"nonsense" in client.errmsg
    assert client.listscripts() == (None, [])


def test_vacation_answers_once_and_never_lists_or_robots(world):
    daemon, peer = world
    client = sieve_client(daemon, CAROL)
    script = 'require ["vacation"];\nvacation :days 7 :subject "Out of office" "Back on Monday.";\n'
    assert client.putscript("away", script) and client.setactive("away")
    client.logout()
    deliver(daemon, "bob@remote.test", CAROL, "first question")
    deliver(daemon, "bob@remote.test", CAROL, "second question")
    deliver(daemon, "news@remote.test", CAROL, "newsletter", "List-Id: <news.remote.test>\r\n")
    deliver(daemon, "robot@remote.test", CAROL, "robot", "Auto-Submitted: auto-generated\r\n")
    answers = arrived(peer, b"Subject: Out of office")
    time.sleep(3)       # a second answer, or one to the list or the robot, would be here by now
    answers = [(e, m) for e, m in peer.messages() if b"Subject: Out of office" in m]
    assert [e["rcpts"] for e, _ in answers] == [["bob@remote.test"]]
    envelope, raw = answers[0]
    assert envelope["mail_from"] == "" and b"Auto-Submitted: auto-replied" in raw
    assert b"In-Reply-To: <" in raw and b"Back on Monday." in raw
    assert len([s for s in subjects(daemon, CAROL, "INBOX") if "question" in s]) == 2


def test_redirect_goes_out_through_the_queue(world):
    daemon, peer = world
    client = sieve_client(daemon, ALICE)
    script = 'if header :contains "subject" "forward me" {\n    redirect "dave@remote.test";\n}\n'
    assert client.putscript("fwd", script) and client.setactive("fwd")
    client.logout()
    deliver(daemon, "bob@remote.test", ALICE, "please forward me")
    [(envelope, raw)] = arrived(peer, b"Subject: please forward me")
    assert envelope["rcpts"] == ["dave@remote.test"] and envelope["mail_from"] == "bob@remote.test"
    assert not any("forward me" in s for s in subjects(daemon, ALICE, "INBOX"))


def _http(daemon: TauDaemon, method: str, path: str, token: str | None = None, body: object = None,
          form: dict | None = None) -> tuple[int, object]:
    base = f"http://127.0.0.1:{daemon.ports['http']}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if form is not None:
        data = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in form.items()).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_rest_filters_and_vacation_round_trip_into_the_script(world):
    daemon, _ = world
    user = "erin@example.test"
    daemon.add_user(user)
    _, grant = _http(daemon, "POST", "/oauth2/token", form={"grant_type": "password", "username": user,
                                                            "password": PASSWORD})
    token = grant["access_token"]
    rules = [{"if": {"header": "subject", "contains": "[ci]"}, "then": {"fileinto": "Builds"}}]
    assert _http(daemon, "PUT", "/api/filters", token, {"items": rules})[0] == 200
    vacation = {"enabled": True, "subject": "Away", "text": "Back soon.", "until": "2099-01-01"}
    assert _http(daemon, "PUT", "/api/vacation", token, vacation)[0] == 200
    assert _http(daemon, "GET", "/api/filters", token) == (200, {"items": rules})
    status, got = _http(daemon, "GET", "/api/vacation", token)
    assert status == 200 and got == {**vacation, "from": None}
    status, error = _http(daemon, "PUT", "/api/filters", token, {"items": [{"if": {"header": "x"}}]})
    assert status == 400 and error["error"] == "invalid_filter"
    client = sieve_client(daemon, user)
    active, _ = client.listscripts()
    assert active == "tau" and 'fileinto "Builds"' in client.getscript("tau")
    client.logout()
    deliver(daemon, "ci@remote.test", user, "[ci] build 42 passed")
    assert any("[ci] build 42" in s for s in subjects(daemon, user, "Builds"))


def test_starttls_then_an_app_password_logs_in(world, monkeypatch):
    daemon, _ = world
    monkeypatch.setenv("SSL_CERT_FILE", str(daemon.data / "tls" / "cert.pem"))   # tau init's self-signed cert
    created = json.loads(daemon.cli("apppassword", "add", CAROL, "thunderbird", "--json").stdout)
    client = Client("localhost", daemon.ports["managesieve"])
    assert client.connect(CAROL, created["password"], starttls=True, authmech="PLAIN")
    assert "vacation" in client.get_sieve_capabilities()
    client.logout()
    refused = Client("localhost", daemon.ports["managesieve"])
    assert not refused.connect(CAROL, "wrong-password", starttls=True, authmech="PLAIN")


def test_ereject_refuses_the_message_at_end_of_data(world):
    daemon, _ = world
    user = "frank@example.test"
    daemon.add_user(user)
    client = sieve_client(daemon, user)
    script = 'require ["ereject"];\nif header :contains "subject" "lottery" {\n    ereject "No lotteries.";\n}\n'
    assert client.putscript("no-spam", script) and client.setactive("no-spam")
    client.logout()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        deliver(daemon, "bob@remote.test", user, "you won the lottery")
    assert refused.value.smtp_code == 550 and b"No lotteries." in refused.value.smtp_error
    deliver(daemon, "bob@remote.test", user, "lunch")
    assert [s for s in subjects(daemon, user, "INBOX") if "lottery" in s] == []


def test_script_management_commands(world):
    daemon, _ = world
    user = "gina@example.test"
    daemon.add_user(user)
    client = sieve_client(daemon, user)
    assert client.havespace("one", 100)
    assert not client.havespace("one", 10 * 1024 * 1024)
    assert client.checkscript("keep;\n")
    assert client.putscript("one", "keep;\n") and client.setactive("one")
    assert not client.deletescript("one")                       # the active script stays
    assert client.renamescript("one", "two")
    assert client.listscripts() == ("two", [])
    assert not client.getscript("one") and client.getscript("two") == "keep;"
    assert client.setactive("") and client.deletescript("two")
    assert client.listscripts() == (None, [])
    client.logout()


def test_a_flag_filter_marks_the_message(world):
    daemon, _ = world
    user = "hank@example.test"
    daemon.add_user(user)
    _, grant = _http(daemon, "POST", "/oauth2/token", form={"grant_type": "password", "username": user,
                                                            "password": PASSWORD})
    rule = {"if": {"header": "from", "contains": "boss@"}, "then": {"flag": "\\Flagged"}}
    assert _http(daemon, "PUT", "/api/filters", grant["access_token"], [rule])[0] == 200
    deliver(daemon, "boss@remote.test", user, "quarterly numbers")
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    imap.login(user, PASSWORD)
    imap.select("INBOX", readonly=True)
    _, data = imap.fetch("1", "(FLAGS)")
    imap.logout()
    assert b"\\Flagged" in data[0]


def test_privacy_export_holds_the_scripts(world, tmp_path):
    import tarfile

    daemon, _ = world
    user = "ivan@example.test"
    daemon.add_user(user)
    client = sieve_client(daemon, user)
    assert client.putscript("mine", "keep;\n") and client.setactive("mine")
    client.logout()
    out = tmp_path / "export.tar.gz"
    daemon.cli("user", "export", user, str(out))
    with tarfile.open(out) as tar:
        assert tar.extractfile("mail/sieve/mine.sieve").read() == b"keep;\r\n"
        assert tar.extractfile("mail/sieve/ACTIVE").read() == b"mine\n"


def test_reject_for_one_of_two_recipients_sends_the_sender_a_notice(world):
    daemon, peer = world
    picky, easy = "judy@example.test", "kate@example.test"
    for user in (picky, easy):
        daemon.add_user(user)
    client = sieve_client(daemon, picky)
    assert client.putscript("r", 'require ["reject"];\nreject "I do not read this.";\n') and client.setactive("r")
    client.logout()
    body = b"From: bob@remote.test\r\nTo: judy@example.test, kate@example.test\r\nSubject: party plans\r\n\r\nHi.\r\n"
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=10) as s:
        s.sendmail("bob@remote.test", [picky, easy], body)
    [(envelope, raw)] = arrived(peer, b"Subject: Rejected: party plans")
    assert envelope["rcpts"] == ["bob@remote.test"] and envelope["mail_from"] == ""
    assert b"I do not read this." in raw
    assert any("party plans" in s for s in subjects(daemon, easy, "INBOX"))
    assert not any("party plans" in s for s in subjects(daemon, picky, "INBOX"))


def test_bad_input_gets_no_and_the_session_goes_on(world):
    import socket

    daemon, _ = world
    with socket.create_connection(("127.0.0.1", daemon.ports["managesieve"]), timeout=10) as sock:
        reader = sock.makefile("rb")

        def reply() -> bytes:
            lines = []
            while True:
                line = reader.readline()
                lines.append(line)
                if line.startswith((b"OK", b"NO", b"BYE")):
                    return b"".join(lines)

        assert b'"SASL" "PLAIN"' in reply()                       # loopback: plaintext login allowed
        for command in (b"FROBNICATE\r\n", b"LISTSCRIPTS\r\n", b'PUTSCRIPT "x" {5+}\r\nkeep;\r\n',
                        b"AUTHENTICATE \"PLAIN\" \"not-base64!\"\r\n"):
            sock.sendall(command)
            assert reply().startswith(b"NO"), command
        sock.sendall(b"NOOP\r\nLOGOUT\r\n")
        assert reply().startswith(b"OK") and reply().startswith(b"OK")


def test_mail_sent_with_the_api_to_a_local_user_is_filtered(world):
    daemon, _ = world
    sender, user = "lena@example.test", "mike@example.test"
    tokens = {}
    for who in (sender, user):
        daemon.add_user(who)
        tokens[who] = _http(daemon, "POST", "/oauth2/token", form={"grant_type": "password", "username": who,
                                                                  "password": PASSWORD})[1]["access_token"]
    rule = {"if": {"header": "from", "contains": "lena@"}, "then": {"fileinto": "Team"}}
    assert _http(daemon, "PUT", "/api/filters", tokens[user], [rule])[0] == 200
    status, _ = _http(daemon, "POST", "/api/emails", tokens[sender], {"to": [user], "subject": "standup notes",
                                                                    "text": "Notes."})
    assert status == 202
    assert any("standup notes" in s for s in subjects(daemon, user, "Team"))
    assert not any("standup notes" in s for s in subjects(daemon, user, "INBOX"))


def test_authenticate_plain_with_the_response_after_an_empty_challenge(world):
    import base64
    import socket

    daemon, _ = world
    with socket.create_connection(("127.0.0.1", daemon.ports["managesieve"]), timeout=10) as sock:
        reader = sock.makefile("rb")
        while not reader.readline().startswith(b"OK"):
            pass
        sock.sendall(b'AUTHENTICATE "PLAIN"\r\n')
        assert reader.readline() == b'""\r\n'
        response = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode())
        sock.sendall(b"{%d+}\r\n%s\r\n" % (len(response), response))
        assert reader.readline().startswith(b"OK")
        sock.sendall(b"LISTSCRIPTS\r\n")
        line = reader.readline()
        while not line.startswith((b"OK", b"NO")):
            line = reader.readline()
        assert line.startswith(b"OK")
