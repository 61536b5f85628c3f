"""Issue 19: chat attachments, end-to-end encrypted in the browser (Signal's attachment pointers).

The sending browser encrypts a file with a fresh key and uploads only the ciphertext to
``/api/messages/attachments`` (bound to one conversation); the key, digest and name travel inside
the E2E message. Over HTTP: only members of that conversation can fetch the blob, uploads count
against the quota. In two Chromium contexts: alice sends a file with a hostile name, bob downloads
it byte-exact, and the server holds neither its bytes nor its name. ``tau.client`` reads the same
pointer and decrypts the file.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from tau.client.attachments import open_attachment
from tests.e2e.test_chat_web import CHROMIUM, PASSWORD, Cli, Page
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.e2e]
USERS = ("alice", "bob", "carol", "dave", "erin")


@pytest.fixture(scope="module", params=engines())
def daemon(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"chat-attach-{request.param}")
    d = TauDaemon(folder, database_url=daemon_database_url(request), listeners=("http",)).init()
    d.cli("user", "add", "alice@example.test", "--admin", "--password-stdin", input=PASSWORD.encode() + b"\n")
    d.start()
    d.engine = request.param
    admin = d.token("alice@example.test", PASSWORD)
    for user in USERS[1:]:
        body = json.dumps({"address": f"{user}@example.test", "password": PASSWORD}).encode()
        status, _, answer = d.http("POST", "/api/admin/users", body, {"Content-Type": "application/json"}, admin)
        assert status == 201, answer
    d.tokens = {u: admin if u == "alice" else d.token(f"{u}@example.test", PASSWORD) for u in USERS}
    yield d
    d.stop()


def call(d: TauDaemon, who: str, method: str, path: str, body: bytes | dict | None = None,
         ctype: str = "application/json") -> tuple[int, bytes]:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    status, _, answer = d.http(method, path, raw, {"Content-Type": ctype} if raw is not None else {}, d.tokens[who])
    return status, answer


def direct(d: TauDaemon, who: str, other: str) -> str:
    status, answer = call(d, who, "POST", "/api/conversations",
                          {"kind": "direct", "members": [f"{other}@example.test"], "encrypted": True})
    assert status in (200, 201), answer
    return json.loads(answer)["id"]


def upload(d: TauDaemon, who: str, conv: str, data: bytes) -> tuple[int, dict]:
    status, answer = call(d, who, "POST", f"/api/messages/attachments?conversation={conv}", data,
                          "application/octet-stream")
    return status, json.loads(answer)


def test_only_members_of_the_conversation_can_fetch_an_attachment(daemon):
    conv = direct(daemon, "alice", "bob")
    blob = b"\x00opaque ciphertext\xff" * 1000
    status, made = upload(daemon, "alice", conv, blob)
    assert status == 201, made
    assert made["size"] == len(blob) and made["conversation"] == conv
    path = f"/api/messages/attachments/{made['id']}"
    for member in ("alice", "bob"):
        status, got = call(daemon, member, "GET", path)
        assert status == 200 and got == blob
    status, answer = call(daemon, "carol", "GET", path)
    assert status == 404 and json.loads(answer)["error"] == "not_found"  # as if it did not exist
    assert call(daemon, "carol", "GET", "/api/messages/attachments/no-such-id")[0] == 404
    status, answer = upload(daemon, "carol", conv, b"let me in")  # not a member: cannot attach to it either
    assert status == 404, answer
    assert daemon.http("GET", path)[0] == 401  # and never anonymously


def test_an_attachment_is_served_as_an_opaque_download(daemon):
    conv = direct(daemon, "alice", "bob")
    _, made = upload(daemon, "alice", conv, b"<script>alert(1)</script>")
    status, headers, _ = daemon.http("GET", f"/api/messages/attachments/{made['id']}", token=daemon.tokens["bob"])
    assert status == 200
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"].startswith("attachment")
    assert headers["x-content-type-options"] == "nosniff"


def test_the_uploader_can_delete_an_attachment_and_others_cannot(daemon):
    conv = direct(daemon, "alice", "bob")
    _, made = upload(daemon, "alice", conv, b"to be deleted")
    path = f"/api/messages/attachments/{made['id']}"
    assert call(daemon, "bob", "DELETE", path)[0] == 404
    assert call(daemon, "alice", "DELETE", path)[0] == 200
    assert call(daemon, "bob", "GET", path)[0] == 404


def test_attachments_count_against_the_quota(daemon):
    status, answer = call(daemon, "alice", "PATCH", "/api/admin/users/dave@example.test", {"quota_bytes": 3000})
    assert status == 200, answer
    daemon.tokens["dave"] = daemon.token("dave@example.test", PASSWORD)
    conv = direct(daemon, "dave", "bob")
    assert upload(daemon, "dave", conv, b"a" * 2000)[0] == 201
    status, answer = upload(daemon, "dave", conv, b"b" * 2000)  # 4000 bytes would pass the 3000 quota
    assert status == 507 and answer["error"] == "quota_exceeded"
    assert upload(daemon, "dave", conv, b"c" * 900)[0] == 201


# -- two browsers ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(daemon):
    if daemon.engine != engines()[0] or not CHROMIUM.exists():
        pytest.skip("the browser half runs once, against the first engine, with Debian's chromium")
    with playwright_sync.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM))
        yield b
        b.close()


def _stored_anywhere(daemon: TauDaemon, needle: bytes) -> bool:
    """Whether ``needle`` is in any file of the daemon's data folder (database, blobs, logs)."""
    return any(needle in p.read_bytes() for p in daemon.data.rglob("*") if p.is_file())


def test_a_file_sent_from_one_browser_is_downloaded_byte_exact_by_the_other(daemon, browser, tmp_path):
    alice, bob = Page(browser, daemon, "alice"), Page(browser, daemon, "bob")
    marker = f"attachment-plaintext-{daemon.engine}-93c1"
    content = (marker.encode() + bytes(range(256))) * 400  # ~110 KB, binary
    name = '<img src=x onerror="window.__pwned=1">report.bin'
    alice.start_chat(bob.address)
    alice.page.get_by_label("Attach file").set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": content}])
    alice.page.get_by_label("Message", exact=True).fill("the report")
    alice.page.get_by_role("button", name="Send").click()
    alice.log().get_by_role("button", name=f"Download {name}").wait_for(timeout=5000)

    bob.page.get_by_role("navigation", name="Chats").get_by_role("button", name=alice.address).wait_for(timeout=5000)
    bob.open(alice.address)
    bob.sees("the report", timeout=5000)
    button = bob.log().get_by_role("button", name=f"Download {name}")
    with bob.page.expect_download() as caught:
        button.click()
    saved = tmp_path / "saved.bin"
    caught.value.save_as(saved)
    assert saved.read_bytes() == content
    assert caught.value.suggested_filename.endswith("report.bin")
    assert bob.page.evaluate("() => window.__pwned") is None  # the hostile name stayed text
    assert alice.page.evaluate("() => window.__pwned") is None
    assert alice.errors == bob.errors == []

    # the server: the blob it stores and serves is ciphertext, and it never saw the name
    status, answer = call(daemon, "bob", "GET", "/api/conversations")
    conv = json.loads(answer)["items"][0]["id"]
    ids = _attachment_ids(daemon)
    assert ids
    served = [call(daemon, "bob", "GET", f"/api/messages/attachments/{i}")[1] for i in ids]
    match = [s for s in served if len(s) == len(content) + 28]  # iv 12 + GCM tag 16
    assert len(match) == 1 and marker.encode() not in match[0]
    assert hashlib.sha256(match[0]).digest() != hashlib.sha256(content).digest()
    assert not _stored_anywhere(daemon, marker.encode())
    assert not _stored_anywhere(daemon, b"report.bin")
    assert conv

    # tau.client reads the pointer bob's browser received and decrypts the same blob
    pointer = bob.page.evaluate("""async (user) => {
      const req = indexedDB.open(`tau-chat:${user}`);
      const db = await new Promise((ok, ko) => { req.onsuccess = () => ok(req.result); req.onerror = ko; });
      const all = await new Promise((ok) => { const r = db.transaction("messages").objectStore("messages").getAll();
                                              r.onsuccess = () => ok(r.result); });
      db.close();
      const m = all.find((x) => x.attachments && x.attachments.length);
      return m ? m.attachments[0] : null; }""", bob.address)
    assert pointer is not None and pointer["name"] == name
    assert open_attachment(pointer, match[0]) == content
    alice.context.close()
    bob.context.close()


def test_tau_chat_and_the_browser_exchange_files_both_ways(daemon, browser, tmp_path):
    erin = Cli(daemon, tmp_path, "erin")  # (dave has a tiny quota)
    alice = Page(browser, daemon, "alice")
    sent = tmp_path / "from-the-terminal.csv"
    sent.write_bytes(b"a,b\n1,2\n" * 1000)
    erin.run("send", alice.address, "a table for you", "--file", str(sent))
    alice.page.get_by_role("navigation", name="Chats").get_by_role("button", name=erin.address).wait_for(timeout=5000)
    alice.open(erin.address)
    alice.sees("a table for you", timeout=5000)
    with alice.page.expect_download() as caught:
        alice.log().get_by_role("button", name="Download from-the-terminal.csv").click()
    got = tmp_path / "got.csv"
    caught.value.save_as(got)
    assert got.read_bytes() == sent.read_bytes()

    reply = bytes(range(256)) * 64
    alice.page.get_by_label("Attach file").set_input_files(
        files=[{"name": "../../reply.bin", "mimeType": "application/octet-stream", "buffer": reply}])
    alice.page.get_by_role("button", name="Send").click()
    alice.log().get_by_role("button", name="Download .._.._reply.bin").wait_for(timeout=5000)
    inbox = tmp_path / "inbox"
    out = erin.run("listen", "--save", str(inbox), "--count", "1", "--timeout", "20")
    assert (inbox / ".._.._reply.bin").read_bytes() == reply  # the name cannot leave the folder
    assert "saved to" in out and not (tmp_path / "reply.bin").exists()
    assert alice.errors == []
    alice.context.close()


PNG_1X1 = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e221bc330000000049454e44ae426082")


def test_an_image_attachment_is_previewed_in_the_page(daemon, browser):
    alice, bob = Page(browser, daemon, "alice"), Page(browser, daemon, "bob")
    alice.start_chat(bob.address)  # the direct conversation of the first test, or a new one
    alice.page.get_by_label("Attach file").set_input_files(
        files=[{"name": "dot.png", "mimeType": "image/png", "buffer": PNG_1X1}])
    alice.page.get_by_role("button", name="Send").click()
    bob.open(alice.address)
    bob.log().get_by_role("button", name="Preview dot.png").click()
    image = bob.log().get_by_role("img", name="dot.png")
    image.wait_for(timeout=5000)
    assert image.evaluate("(img) => img.complete && img.naturalWidth") == 1  # decrypted and drawn
    assert image.get_attribute("src").startswith("blob:")
    assert alice.errors == bob.errors == []
    alice.context.close()
    bob.context.close()


def _attachment_ids(daemon: TauDaemon) -> list[str]:
    if daemon.engine == "postgres":
        import psycopg2

        url = daemon.env["TAU_DATABASE_URL"]
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM msg_attachments")
            return [r[0] for r in cur.fetchall()]
    import sqlite3

    db = next(p for p in daemon.data.rglob("*.db"))
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM msg_attachments")]
