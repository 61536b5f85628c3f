"""Mail → cloud, outgoing: attachments over ``[flows] attachment_link_threshold`` become share links.

Against the real daemon on SQLite and PostgreSQL, with real clients only: smtplib (STARTTLS +
AUTH on submission), the HTTP API with a bearer token, imaplib to read what arrived, plain HTTP
GET of the ``/s/TOKEN`` link, and a remote MX on loopback (with DNS) whose copy must carry a
DKIM signature that verifies over the rewritten message.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import imaplib
import json
import os
import re
import smtplib
import ssl
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines
from tests.support.outbound import RemotePeer
from tests.support.smtp import DaemonStore

pytestmark = pytest.mark.e2e
ALICE, BOB, CAROL, PASSWORD = "alice@example.test", "bob@example.test", "carol@example.test", "secret-Pa55"
THRESHOLD = 200_000
LINK = re.compile(rb"(http://127\.0\.0\.1:\d+/s/([A-Za-z0-9_-]+))")


def txt_of(keygen_output: str) -> tuple[str, str]:
    name, _, _, rest = keygen_output.splitlines()[0].split(" ", 3)
    return name.rstrip("."), "".join(p.strip('"') for p in rest.split('" "'))


@pytest.fixture(scope="module", params=engines())
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp(f"links-{request.param}")
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("smtp", "submission", "imap", "http"),
                  extra={"TAU_FLOWS_ATTACHMENT_LINK_THRESHOLD": str(THRESHOLD),
                         "TAU_LIMITS_MESSAGE_SIZE": str(96 * 1024 * 1024),
                         "TAU_LIMITS_REQUEST_BODY": str(4 * 1024 * 1024)})
    d.env["TAU_TAU_PUBLIC_URL"] = d.url
    d.init()
    for user in (ALICE, BOB):
        d.add_user(user, PASSWORD)
    d.cli("user", "add", CAROL, "--password-stdin", "--quota", "250000", input=PASSWORD.encode() + b"\n")
    key = txt_of(d.cli("dkim", "keygen", "example.test").stdout.decode())
    peer = RemotePeer(folder, {"remote.test": [["MX", 10, "mx.remote.test"]],
                               "mx.remote.test": [["A", "127.0.0.1"]], key[0]: [["TXT", key[1]]]}).start()
    d.env.update({"TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{peer.dns_port}", "TAU_OUTBOUND_PORT": str(peer.smtp_port),
                  "TAU_OUTBOUND_POLL_INTERVAL": "1", "TAU_OUTBOUND_RETRY_BASE": "1"})
    d.start("smtp")
    store = DaemonStore(d)
    tokens = {u: d.token(u, PASSWORD) for u in (ALICE, BOB, CAROL)}
    yield {"daemon": d, "peer": peer, "store": store, "tokens": tokens}
    store.close()
    d.stop()
    peer.stop()


# -- clients ----------------------------------------------------------------------------------------

def submit(d: TauDaemon, sender: str, rcpts: list[str], msg: EmailMessage | bytes) -> None:
    raw = msg if isinstance(msg, bytes) else msg.as_bytes(policy=email.policy.SMTP)
    ctx = ssl.create_default_context(cafile=str(d.data / "tls/cert.pem"))
    with smtplib.SMTP("localhost", d.ports["submission"], timeout=60) as s:
        s.starttls(context=ctx)
        s.login(sender, PASSWORD)
        s.sendmail(sender, rcpts, raw)


def api(d: TauDaemon, token: str, method: str, path: str, body: Any = None,
        raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    status, _, out = d.http(method, path, data, headers, token=token)
    return status, (json.loads(out) if out[:1] in (b"{", b"[") else out)


def imap_fetch(d: TauDaemon, user: str, subject: str, mailbox: str = "INBOX", timeout: float = 20) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        imap = imaplib.IMAP4("127.0.0.1", d.ports["imap"])
        try:
            imap.login(user, PASSWORD)
            imap.select(f'"{mailbox}"', readonly=True)
            _, found = imap.search(None, "SUBJECT", f'"{subject}"')
            ids = found[0].split()
            if ids:
                _, data = imap.fetch(ids[-1], "(RFC822)")
                return bytes(data[0][1])
        finally:
            imap.logout()
        if time.monotonic() > deadline:
            raise AssertionError(f"no {subject!r} in {user}'s {mailbox}")
        time.sleep(0.2)


def public_get(d: TauDaemon, url: bytes) -> tuple[int, bytes]:
    assert url.startswith(d.url.encode())
    status, _, body = d.http("GET", url[len(d.url):].decode())
    return status, body


def mail(subject: str, to: list[str], attachments: list[tuple[str, bytes]], sender: str = ALICE) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), subject
    msg["Message-ID"] = f"<{subject}@example.test>"
    msg.set_content(f"See the files for {subject}.\n")
    msg.add_alternative(f"<p>See the files for {subject}.</p>", subtype="html")
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg


def parts(raw: bytes) -> list[Any]:
    return list(email.message_from_bytes(raw, policy=email.policy.default).walk())


def files_in(d: TauDaemon, token: str, path: str) -> dict[str, dict[str, Any]]:
    status, page = api(d, token, "GET", f"/api/files?path={path.replace(' ', '%20')}")
    return {i["name"]: i for i in page["items"]} if status == 200 else {}


def blob_keys(d: TauDaemon) -> set[str]:
    return {p.name for p in (d.data / "blobs").glob("??/??/*")}


def referenced(store: DaemonStore) -> set[str]:
    return {r[0] for r in store.query("SELECT blob_key FROM mail_blobs UNION SELECT blob_key FROM file_blobs")}


# -- the behaviour ------------------------------------------------------------------------------------

def test_submission_replaces_a_big_attachment_by_a_working_link(world: dict[str, Any]) -> None:
    d, peer, tok = world["daemon"], world["peer"], world["tokens"]
    big, small = os.urandom(1_000_000), os.urandom(20_000)
    submit(d, ALICE, [BOB, "dana@remote.test"], mail("links-smtp", [BOB, "dana@remote.test"],
                                                     [("../../x/report.bin", big), ("small.bin", small)]))
    got = imap_fetch(d, BOB, "links-smtp")
    assert len(got) < 100_000 and big[:64] not in got
    [link_part] = [p for p in parts(got) if LINK.search(p.get_payload(decode=True) or b"")]
    text = link_part.get_content()
    assert link_part.get_content_type() == "text/plain" and '"report.bin"' in text and "976.6 KiB" in text
    [(url, _)] = LINK.findall(link_part.get_payload(decode=True))
    assert public_get(d, url) == (200, big)
    # small attachments and the body are untouched
    [kept] = [p for p in parts(got) if p.get_filename() == "small.bin"]
    assert kept.get_payload(decode=True) == small
    assert any(p.get_content_type() == "text/html" for p in parts(got))
    # the Sent copy is the same rewritten message
    assert url in imap_fetch(d, ALICE, "links-smtp", "Sent")
    # the file sits in the sender's cloud under a clean name (no ../, no folder x)
    stored = files_in(d, tok[ALICE], "/Mail attachments")
    assert stored["report.bin"]["size"] == len(big)
    assert "x" not in files_in(d, tok[ALICE], "/") and ".." not in stored
    # the remote copy carries the link and a DKIM signature made over the rewritten message
    import dkim

    deadline = time.monotonic() + 30
    while not (found := [m for _, m in peer.messages() if b"Subject: links-smtp" in m]):
        assert time.monotonic() < deadline, "the remote copy never arrived"
        time.sleep(0.2)
    remote = found[0]
    assert url in remote.replace(b"=\r\n", b"") and big[:64] not in remote
    assert dkim.DKIM(remote).verify(dnsfunc=lambda name, timeout=5: peer.dns_resolve_txt(
        name.decode().rstrip("."))[0])


def test_second_user_sees_nothing_of_the_first_users_files(world: dict[str, Any]) -> None:
    d, tok = world["daemon"], world["tokens"]
    stored = files_in(d, tok[ALICE], "/Mail attachments")
    assert stored, "run after a linked send"
    any_id = next(iter(stored.values()))["id"]
    assert api(d, tok[BOB], "GET", f"/api/files/{any_id}")[0] == 404
    assert "Mail attachments" not in files_in(d, tok[BOB], "/")
    # the link is public (that is what a share link is), but guessing one is not
    assert d.http("GET", "/s/" + "A" * 32)[0] == 404


def test_api_send_links_inline_and_cloud_files_without_reading_them(world: dict[str, Any]) -> None:
    d, tok = world["daemon"], world["tokens"]
    cloud = os.urandom(3 * 1024 * 1024)
    status, up = api(d, tok[ALICE], "POST", "/api/files?path=/big.iso", raw=cloud)
    assert status == 201, up
    inline, tiny = os.urandom(300_000), b"tiny attachment"
    body = {"to": [BOB], "subject": "links-api", "text": "files attached",
            "attachments": [{"file_id": up["id"]},
                            {"filename": "report.bin", "content_base64": base64.b64encode(inline).decode()},
                            {"filename": "tiny.txt", "content_type": "text/plain",
                             "content_base64": base64.b64encode(tiny).decode()}]}
    status, sent = api(d, tok[ALICE], "POST", "/api/emails", body)
    assert status == 202, sent
    got = imap_fetch(d, BOB, "links-api")
    urls = [u for u, _ in LINK.findall(got.replace(b"=\r\n", b""))]
    assert len(urls) == 2 and len(got) < 50_000
    assert sorted(public_get(d, u)[1] for u in urls) == sorted([cloud, inline])
    assert [p.get_payload(decode=True) for p in parts(got) if p.get_filename() == "tiny.txt"] == [tiny]
    # a second report.bin gets its own name; the first link keeps serving the first file
    first = next(u for u in urls if public_get(d, u)[1] == inline)
    other = os.urandom(300_000)
    body = {"to": [BOB], "subject": "links-api-2", "attachments": [
        {"filename": "report.bin", "content_base64": base64.b64encode(other).decode()}]}
    assert api(d, tok[ALICE], "POST", "/api/emails", body)[0] == 202
    [(second, _)] = LINK.findall(imap_fetch(d, BOB, "links-api-2").replace(b"=\r\n", b""))
    assert public_get(d, first)[1] == inline and public_get(d, second)[1] == other
    assert {"report (2).bin", "big.iso"} <= set(files_in(d, tok[ALICE], "/Mail attachments"))


def test_small_attachments_go_through_unchanged(world: dict[str, Any]) -> None:
    d = world["daemon"]
    data = os.urandom(THRESHOLD - 1000)
    submit(d, ALICE, [BOB], mail("links-small", [BOB], [("fits.bin", data)]))
    got = imap_fetch(d, BOB, "links-small")
    assert not LINK.search(got)
    assert [p.get_payload(decode=True) for p in parts(got) if p.get_filename() == "fits.bin"] == [data]


def test_a_refused_api_send_leaves_no_file_and_no_link(world: dict[str, Any]) -> None:
    d, tok, store = world["daemon"], world["tokens"], world["store"]
    before = set(files_in(d, tok[ALICE], "/Mail attachments"))
    body = {"to": ["nobody@example.test"], "subject": "links-refused", "attachments": [
        {"filename": "refused.bin", "content_base64": base64.b64encode(os.urandom(300_000)).decode()}]}
    status, answer = api(d, tok[ALICE], "POST", "/api/emails", body)
    assert status == 400 and answer["error"] == "unknown_recipient"
    assert set(files_in(d, tok[ALICE], "/Mail attachments")) == before
    assert blob_keys(d) <= referenced(store)


def test_over_quota_sender_sends_the_attachment_unchanged(world: dict[str, Any]) -> None:
    d, tok, store = world["daemon"], world["tokens"], world["store"]
    data = os.urandom(300_000)       # over the threshold, under the message size, over carol's 250 kB quota
    keys_before = blob_keys(d)
    submit(d, CAROL, [BOB], mail("links-quota", [BOB], [("quota.bin", data)], sender=CAROL))
    got = imap_fetch(d, BOB, "links-quota")
    assert not LINK.search(got)
    assert [p.get_payload(decode=True) for p in parts(got) if p.get_filename() == "quota.bin"] == [data]
    assert "Mail attachments" not in files_in(d, tok[CAROL], "/")
    assert (blob_keys(d) - keys_before) <= referenced(store)     # the file blob written was dropped


# -- hostile and malformed input --------------------------------------------------------------------

def raw_mail(subject: str, body: bytes, ctype: bytes = b'multipart/mixed; boundary="XX"') -> bytes:
    return (b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: " + subject.encode() +
            b"\r\nMIME-Version: 1.0\r\nContent-Type: " + ctype + b"\r\n\r\n" + body)


def test_malformed_multipart_is_delivered_and_never_crashes(world: dict[str, Any]) -> None:
    d = world["daemon"]
    junk = base64.encodebytes(os.urandom(400_000)).replace(b"\n", b"\r\n")
    # a base64 part with garbage in it and no closing delimiter at all (truncated message)
    body = (b"preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b'Content-Disposition: attachment; filename="..\\\\..\\\\evil\x01.bin"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + junk[:5000] + b"!!**==\r\n" + junk[5000:])
    submit(d, ALICE, [BOB], raw_mail("links-truncated", body))
    got = imap_fetch(d, BOB, "links-truncated")
    [(url, _)] = LINK.findall(got.replace(b"=\r\n", b""))
    status, content = public_get(d, url)
    assert status == 200 and len(content) > THRESHOLD
    assert "evil.bin" in files_in(d, world["tokens"][ALICE], "/Mail attachments")
    # a part header that never ends (over 64 KiB): the message goes out as it was
    endless = b"--XX\r\nContent-Disposition: attachment; filename=a.bin\r\n" + b"X-Pad: " + b"p" * 900 + b"\r\n" * 1
    endless += (b"\t" + b"p" * 900 + b"\r\n") * 80           # one folded field of ~72 KB
    filler = (b"A" * 76 + b"\r\n") * 4000
    submit(d, ALICE, [BOB], raw_mail("links-endless-header", endless + b"\r\n" + filler + b"--XX--\r\n"))
    got = imap_fetch(d, BOB, "links-endless-header")
    assert not LINK.search(got) and filler in got


def test_signed_and_single_part_messages_are_left_alone(world: dict[str, Any]) -> None:
    d = world["daemon"]
    payload = base64.encodebytes(os.urandom(300_000)).replace(b"\n", b"\r\n")
    inner = (b'Content-Type: multipart/mixed; boundary="IN"\r\n\r\n--IN\r\nContent-Type: text/plain\r\n\r\nsigned\r\n'
             b"--IN\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=s.bin\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" + payload + b"--IN--\r\n")
    body = (b"--SIG\r\n" + inner + b"\r\n--SIG\r\nContent-Type: application/pgp-signature\r\n\r\n"
            b"-----BEGIN PGP SIGNATURE-----\r\nxyz\r\n-----END PGP SIGNATURE-----\r\n--SIG--\r\n")
    ctype = b'multipart/signed; boundary="SIG"; micalg=pgp-sha256; protocol="application/pgp-signature"'
    submit(d, ALICE, [BOB], raw_mail("links-signed", body, ctype))
    got = imap_fetch(d, BOB, "links-signed")
    assert not LINK.search(got) and inner in got
    single = raw_mail("links-single", payload, b"application/octet-stream\r\nContent-Transfer-Encoding: base64"
                      b"\r\nContent-Disposition: attachment; filename=whole.bin")
    submit(d, ALICE, [BOB], single)
    assert payload in imap_fetch(d, BOB, "links-single")


def test_a_huge_attachment_is_streamed_not_held(world: dict[str, Any]) -> None:
    """64 MiB of attachment (~87 MB on the wire): the daemon's peak memory grows far less than that."""
    d = world["daemon"]
    assert d.proc is not None
    status = Path(f"/proc/{d.proc.pid}/status")

    def peak() -> int:
        line = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    before = peak()
    chunk = os.urandom(1024 * 1024)
    big = chunk * 64
    submit(d, ALICE, [BOB], mail("links-huge", [BOB], [("huge.bin", big)]))
    got = imap_fetch(d, BOB, "links-huge", timeout=60)
    grown = peak() - before
    assert grown < 40 * 1024 * 1024, f"peak memory grew by {grown / 2**20:.0f} MiB"
    [(url, _)] = LINK.findall(got.replace(b"=\r\n", b""))
    status_code, _, content = d.http("GET", url[len(d.url):].decode())
    assert status_code == 200 and hashlib.sha256(content).digest() == hashlib.sha256(big).digest()
