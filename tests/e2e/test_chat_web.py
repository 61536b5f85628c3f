"""Issue 19, item 3: chat in Chromium, end-to-end encrypted by WebCrypto in the page, against ``twistd -n tau``.

One daemon and one headless Chromium (Debian's, driven by Playwright) for the module. The browser's
crypto (``tau/web/static/chat``) is first checked against ``tau.client`` for fixed keys, then two
browsers chat in real time, the ``tau chat`` command talks to a browser both ways, and a browser and
the command start their sessions at the same time without losing a message. The server's database
never holds a message's text.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tau.client import ratchet, sessions, x3dh
from tau.client.messenger import Client
from tests.support.daemon import TauDaemon, tool
from tests.support.databases import daemon_database_url, engines

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]
PASSWORD = "secret-Pa55"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
VISIBLE_MS = 2000


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


#: one daemon for the module (a browser suite per engine would double its time): PostgreSQL when selected
ENGINE = "postgres" if "postgres" in engines() else "sqlite"


@pytest.fixture(scope="module", params=[ENGINE])
def daemon(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"chat-web-{request.param}")
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("http",)).init()
    d.cli("user", "add", "alice@example.test", "--admin", "--password-stdin", input=PASSWORD.encode() + b"\n")
    d.start()
    admin = d.token("alice@example.test", PASSWORD)
    for user in USERS[1:]:  # over the admin API: a CLI process each costs seconds on a busy machine
        body = json.dumps({"address": f"{user}@example.test", "password": PASSWORD}).encode()
        status, _, answer = d.http("POST", "/api/admin/users", body, {"Content-Type": "application/json"}, admin)
        assert status == 201, answer
    d.engine = request.param
    d.pg = request.getfixturevalue("postgres_db") if url else None
    yield d
    d.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM))
        yield b
        b.close()


class Page:
    """One browser context (its own IndexedDB: its own device) signed in to the chat view."""

    def __init__(self, browser: Any, daemon: TauDaemon, user: str) -> None:
        self.address = f"{user}@example.test"
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(daemon.url + "/app/chat-dev.html")
        self.page.get_by_label("Email").fill(self.address)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("status").filter(has_text="Connected").wait_for(timeout=15000)

    def new_forms(self) -> None:
        if not self.page.get_by_label("Chat with").is_visible():
            self.page.get_by_text("New chat or group").click()

    def start_chat(self, other: str) -> None:
        self.new_forms()
        self.page.get_by_label("Chat with").fill(other)
        self.page.get_by_role("button", name="Start chat").click()
        self.page.get_by_role("heading", name=other).wait_for()

    def open(self, other: str) -> None:
        self.page.get_by_role("navigation", name="Chats").get_by_role("button", name=other).click()
        self.page.get_by_role("heading", name=other).wait_for()

    def send(self, text: str) -> float:
        """Type and send; returns the page's clock (ms) at the moment Send was pressed."""
        box = self.page.get_by_label("Message", exact=True)
        box.fill(text)
        return float(self.page.evaluate("""() => { const t = Date.now();
            document.querySelector('form.chat-composer').requestSubmit(); return t; }"""))

    def log(self) -> Any:
        return self.page.get_by_role("log", name="Messages")

    def sees(self, text: str, timeout: float = VISIBLE_MS) -> None:
        self.log().get_by_text(text, exact=True).wait_for(timeout=timeout)

    def texts(self) -> list[str]:
        return self.page.locator(".chat-log .chat-text").all_inner_texts()

    def undecryptable(self) -> list[str]:
        return self.page.locator(".chat-log .chat-error").all_inner_texts()


class Cli:
    """A ``tau chat`` device (state file, subprocesses)."""

    def __init__(self, daemon: TauDaemon, folder: Path, user: str) -> None:
        self.address, self.state, self.env = f"{user}@example.test", str(folder / f"{user}.json"), daemon.env
        self.run("login", daemon.url, self.address, "--password-stdin", stdin=PASSWORD + "\n")

    def argv(self, *args: str) -> list[str]:
        return [tool("tau"), "chat", *args, "--state", self.state]

    def run(self, *args: str, stdin: str = "") -> str:
        done = subprocess.run(self.argv(*args), input=stdin, text=True, capture_output=True, env=self.env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def listen(self, count: int, timeout: float = 10) -> list[dict]:
        out = self.run("listen", "--json", "--count", str(count), "--timeout", str(timeout))
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def _database_holds(daemon: TauDaemon, marker: str) -> bool:
    """Whether the marker is anywhere in the server's database (files, WAL, or any row as text)."""
    if daemon.pg is None:
        return any(marker.encode() in p.read_bytes() for p in daemon.data.rglob("*") if p.is_file()
                   and ".db" in p.name or p.suffix in (".sqlite", ".sqlite3", "-wal"))
    import psycopg2

    with psycopg2.connect(daemon.pg.url) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        for (table,) in cur.fetchall():
            cur.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s', (f"%{marker}%",))
            if cur.fetchone()[0]:
                return True
    return False


# -- the browser's crypto against tau.client, fixed keys ---------------------------------------------------

JS_VECTORS = """async (v) => {
  const b = await import('/app/chat/bytes.js');
  const x = await import('/app/chat/x3dh.js');
  const r = await import('/app/chat/ratchet.js');
  const s = await import('/app/chat/sessions.js');
  const out = {};
  const alice = await x.IdentityKey.fromSeed(b.b64d(v.alice_seed));
  const bob = await x.IdentityKey.fromSeed(b.b64d(v.bob_seed));
  out.alice_public = b.b64e(alice.public);
  out.signature = b.b64e(await alice.sign(b.b64d(v.spk_pub)));
  out.ed_to_x = b.b64e(x.edToX(bob.public));
  const [rk, ck] = await r.kdfRk(b.b64d(v.rk), b.b64d(v.dh_out));
  out.kdf_rk = [b.b64e(rk), b.b64e(ck)];
  const [ck2, mk] = await r.kdfCk(b.b64d(v.ck));
  out.kdf_ck = [b.b64e(ck2), b.b64e(mk)];
  out.sealed = b.b64e(await r.sealWith(b.b64d(v.mk), b.utf8(v.plaintext), b.b64d(v.aad)));
  out.header_bytes = b.b64e(r.headerBytes(v.header));
  out.fingerprint = await s.fingerprint(v.bob_ik);
  out.safety = await s.safetyNumber(alice.public, v.bob_ik);
  const spk = await x.importX25519(b.b64d(v.spk_priv));
  const opk = await x.importX25519(b.b64d(v.opk_priv));
  const ek = await x.importX25519(b.b64d(v.ek_priv));
  const init = await x.initiate(alice, v.bundle, ek);
  out.x3dh_initiator = [b.b64e(init.sharedKey), b.b64e(init.associatedData)];
  const [sk, ad] = await x.respond(bob, init.header, spk, opk);
  out.x3dh_responder = [b.b64e(sk), b.b64e(ad)];
  const forged = {...v.bundle.signed_prekey, public_key: v.bundle.one_time_prekey.public_key};
  const bad = {...v.bundle, signed_prekey: forged};
  out.bad_bundle = await x.initiate(alice, bad).then(() => 'accepted', (e) => e.constructor.name);
  // Python's ratchet message, decrypted here; the answer goes back to Python
  const bobRatchet = r.Ratchet.bob(b.b64d(v.sk), spk);
  out.from_python = b.fromUtf8(await bobRatchet.decrypt(v.py_header, b.b64d(v.py_ct), b.b64d(v.ad)));
  out.replay = await bobRatchet.decrypt(v.py_header, b.b64d(v.py_ct), b.b64d(v.ad))
    .then(() => 'decrypted', (e) => e.constructor.name);
  const [h, c] = await bobRatchet.encrypt(b.utf8('answer from the browser'), b.b64d(v.ad));
  out.reply = [h, b.b64e(c)];
  return out;
}"""


def _seed(n: int) -> bytes:
    return bytes([n]) * 32


def _x_private(n: int) -> tuple[bytes, X25519PrivateKey]:
    return _seed(n), X25519PrivateKey.from_private_bytes(_seed(n))


def _pub(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_the_browser_crypto_matches_tau_client_for_fixed_keys(daemon, browser):
    alice, bob = x3dh.IdentityKey(_seed(1)), x3dh.IdentityKey(_seed(2))
    (spk_raw, spk), (opk_raw, opk), (ek_raw, ek) = _x_private(3), _x_private(4), _x_private(5)
    bundle = {"device_id": 7, "registration_id": 9, "identity_key": b64(bob.public),
              "signed_prekey": {"key_id": 1, "public_key": b64(_pub(spk)), "signature": b64(bob.sign(_pub(spk)))},
              "one_time_prekey": {"key_id": 4, "public_key": b64(_pub(opk))}}
    header = {"ik": b64(alice.public), "ek": b64(_pub(ek)), "spk": 1, "opk": 4}
    sk, ad = x3dh.respond(bob, header, spk, opk)
    alice_ratchet = ratchet.Ratchet.alice(sk, _pub(spk))
    py_header, py_ct = alice_ratchet.encrypt("grüße from Python".encode(), ad)
    mk = _seed(6)
    okm_aead, nonce = ratchet._aead(mk)
    v = {"alice_seed": b64(_seed(1)), "bob_seed": b64(_seed(2)), "spk_pub": b64(_pub(spk)), "rk": b64(_seed(7)),
         "dh_out": b64(_seed(8)), "ck": b64(_seed(9)), "mk": b64(mk), "plaintext": "tau", "aad": b64(b"ad"),
         "header": {"dh": b64(_pub(ek)), "pn": 3, "n": 70000}, "bob_ik": b64(bob.public), "spk_priv": b64(spk_raw),
         "opk_priv": b64(opk_raw), "ek_priv": b64(ek_raw), "bundle": bundle, "sk": b64(sk), "ad": b64(ad),
         "py_header": py_header, "py_ct": b64(py_ct)}
    page = browser.new_page()
    page.goto(daemon.url + "/app/chat-dev.html")
    out = page.evaluate(JS_VECTORS, v)
    page.close()
    assert out["alice_public"] == b64(alice.public)
    assert out["signature"] == b64(alice.sign(_pub(spk)))
    assert out["ed_to_x"] == b64(x3dh.ed25519_public_to_x25519(bob.public)) == b64(_pub(bob.dh))
    assert out["kdf_rk"] == [b64(k) for k in ratchet.kdf_rk(_seed(7), _seed(8))]
    assert out["kdf_ck"] == [b64(k) for k in ratchet.kdf_ck(_seed(9))]
    assert out["sealed"] == b64(okm_aead.encrypt(nonce, b"tau", b"ad"))
    assert isinstance(okm_aead, AESGCM)
    assert out["header_bytes"] == b64(ratchet.header_bytes(v["header"]))
    assert out["fingerprint"] == sessions.fingerprint(b64(bob.public))
    assert out["safety"] == sessions.safety_number(alice.public, b64(bob.public))
    assert out["x3dh_initiator"] == out["x3dh_responder"] == [b64(sk), b64(ad)]
    assert out["bad_bundle"] == "X3DHError"
    assert out["from_python"] == "grüße from Python"
    assert out["replay"] == "RatchetError"
    reply_header, reply_ct = out["reply"]
    assert alice_ratchet.decrypt(reply_header, base64.b64decode(reply_ct), ad) == b"answer from the browser"


# -- two browsers ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pages(daemon, browser):
    alice, bob = Page(browser, daemon, "alice"), Page(browser, daemon, "bob")
    yield alice, bob
    alice.context.close()
    bob.context.close()


def test_two_browsers_chat_in_real_time_and_the_server_keeps_only_ciphertext(daemon, pages):
    alice, bob = pages
    marker = f"plaintext-marker-{daemon.engine}-7f3a"
    alice.start_chat(bob.address)
    alice.send(f"hello bob {marker}")
    alice.sees(f"hello bob {marker}")
    chats = bob.page.get_by_role("navigation", name="Chats")
    chats.get_by_role("button", name=alice.address).get_by_label("1 unread").wait_for(timeout=VISIBLE_MS)
    alice.log().get_by_text("Delivered").wait_for(timeout=VISIBLE_MS)  # bob's browser acknowledged it
    bob.open(alice.address)
    bob.sees(f"hello bob {marker}")
    chats.get_by_label("1 unread").wait_for(state="detached")
    alice.log().get_by_text("Read").wait_for(timeout=VISIBLE_MS)  # bob's read receipt

    bob.page.get_by_label("Message", exact=True).press_sequentially("typ")
    alice.page.get_by_text(f"{bob.address} is typing…").wait_for(timeout=VISIBLE_MS)
    bob.send("hi alice, all secret")
    alice.sees("hi alice, all secret")
    alice.page.get_by_text(f"{bob.address} is typing…").wait_for(state="detached", timeout=VISIBLE_MS)
    alice.send("second from alice")
    bob.sees("second from alice")
    assert f"{bob.address}: online" in alice.page.locator(".chat-presence").inner_text()
    bob.page.locator(".chat-presence").filter(has_text=f"{alice.address}: online").wait_for(timeout=VISIBLE_MS)

    numbers = []
    for page in (alice, bob):
        page.page.get_by_text("Safety numbers").click()
        numbers.append(page.page.get_by_role("list", name="Safety numbers").locator("code").all_inner_texts())
    assert len(numbers[0]) == 1 and numbers[0] == numbers[1]  # the same number on both devices
    assert len(numbers[0][0].split()) == 12

    assert alice.undecryptable() == bob.undecryptable() == []
    assert alice.errors == bob.errors == []
    assert not _database_holds(daemon, marker)
    assert not _database_holds(daemon, "all secret")


def test_a_group_chat_with_a_hostile_title_and_a_call_from_it(daemon, pages):
    alice, bob = pages
    title = 'Team <img src=x onerror="document.title=1">'
    alice.new_forms()
    alice.page.get_by_label("Group name").fill(title)
    alice.page.get_by_label("Members").fill(bob.address)
    alice.page.get_by_role("button", name="Create group").click()
    alice.page.get_by_role("heading", name=title).wait_for()
    alice.send("hello team")
    alice.sees("hello team")
    bob.open(title)
    bob.sees("hello team")
    bob.send("team answer")
    alice.sees("team answer")
    for page in (alice, bob):
        assert page.page.locator("img").count() == 0 and page.page.title() != "1"
    with alice.context.expect_page() as popup:
        alice.page.get_by_role("button", name="Call").click()
    popup.value.wait_for_load_state()
    assert popup.value.url.startswith(daemon.url + "/call/")
    popup.value.close()
    assert alice.undecryptable() == bob.undecryptable() == []


def test_a_browser_device_keeps_its_keys_and_history_across_a_reload(daemon, browser, pages):
    alice, bob = pages
    device = bob.page.evaluate("() => window.tauChat.client.state.deviceId")
    stored = bob.page.evaluate("""async () => {
        const db = await new Promise((ok) => { const r = indexedDB.open('tau-chat:bob@example.test');
                                               r.onsuccess = () => ok(r.result); });
        const state = await new Promise((ok) => { const r = db.transaction('device').objectStore('device').get('state');
                                                  r.onsuccess = () => ok(r.result); });
        const keys = [state.identity.signing, state.identity.dh, ...state.signedPrekeys.map((p) => p[1].priv)];
        return keys.map((k) => [k.type, k.extractable]); }""")
    assert stored and all(kind == "private" and extractable is False for kind, extractable in stored)
    bob.page.reload()
    bob.page.get_by_label("Email").fill(bob.address)
    bob.page.get_by_label("Password").fill(PASSWORD)
    bob.page.get_by_role("button", name="Sign in").click()
    bob.page.get_by_role("status").filter(has_text=f"device {device}").wait_for(timeout=15000)
    bob.open(alice.address)
    bob.sees("second from alice")  # the history lives in this browser only
    alice.open(bob.address)
    alice.send("after the reload")
    bob.sees("after the reload")
    assert bob.undecryptable() == []


def test_send_to_display_between_two_browsers(daemon, pages):
    alice, bob = pages
    bob.page.evaluate("""() => { window.__seen = {};
        new MutationObserver(() => { for (const n of document.querySelectorAll('.chat-log .chat-text')) {
          if (!(n.textContent in window.__seen)) window.__seen[n.textContent] = Date.now(); } })
        .observe(document.querySelector('.chat-log'), {childList: true, subtree: true}); }""")
    latencies = []
    for i in range(50):
        text = f"latency {i}"
        sent = alice.send(text)
        bob.sees(text)
        latencies.append(bob.page.evaluate("(t) => window.__seen[t]", text) - sent)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(f"\nsend-to-display over 50 messages: median {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms")
    assert max(latencies) < VISIBLE_MS
    assert bob.undecryptable() == []


# -- the browser and tau chat ------------------------------------------------------------------------------

def test_tau_chat_and_the_browser_talk_both_ways(daemon, pages, tmp_path):
    alice, _ = pages
    carol = Cli(daemon, tmp_path, "carol")
    assert carol.run("send", alice.address, "from the terminal: ünïcode ✓").startswith("sent #")
    alice.page.get_by_role("navigation", name="Chats").get_by_role("button", name=carol.address).wait_for(
        timeout=VISIBLE_MS)
    alice.open(carol.address)
    alice.sees("from the terminal: ünïcode ✓")
    alice.send("answered in Chromium")
    alice.sees("answered in Chromium")
    got = carol.listen(count=1)
    assert [(m["sender"], m["text"], m["error"]) for m in got] == [(alice.address, "answered in Chromium", None)]
    assert alice.undecryptable() == []


@pytest.fixture(scope="module")
def loop():
    """An event loop in a thread for tau.client (Playwright's sync API owns the test thread)."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)


@pytest.fixture(scope="module")
def run(loop):
    def run(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)
    return run


@pytest.fixture(scope="module")
def dave(daemon, run):
    return run(Client.login(daemon.url, "dave@example.test", PASSWORD, one_time_prekeys=5))


def test_simultaneous_initiation_between_the_browser_and_tau_client_loses_nothing(pages, loop, run, dave):
    _, bob = pages
    bob.start_chat(dave.user)
    bob.send("b1")  # bob starts a session with dave's device...
    bob.sees("b1")
    run(dave.send("d1", to=bob.address))  # ...and dave, not having read b1, starts one with bob's
    bob.sees("d1", timeout=5000)
    crossing = asyncio.run_coroutine_threadsafe(dave.send("d2", to=bob.address), loop)
    bob.send("b2")  # both write again at once, before reading the other's first message
    crossing.result(30)
    bob.sees("d2", timeout=5000)

    async def receive(count: int) -> list[tuple[str | None, str | None]]:
        await dave.connect()
        got = [await dave.next_message() for _ in range(count)]
        await dave.disconnect()
        return [(m.text, m.error) for m in got]

    assert run(receive(2)) == [("b1", None), ("b2", None)]
    run(dave.send("d3", to=bob.address))  # the two sides converged on one session
    bob.sees("d3", timeout=5000)
    bob.send("b3")
    assert run(receive(1)) == [("b3", None)]
    assert bob.undecryptable() == []
    assert sorted(t for t in bob.texts() if t[0] in "bd") == ["b1", "b2", "b3", "d1", "d2", "d3"]
    assert bob.errors == []


def test_two_browsers_writing_first_at_the_same_moment_lose_nothing(daemon, browser):
    erin, frank = Page(browser, daemon, "erin"), Page(browser, daemon, "frank")
    erin.start_chat(frank.address)
    frank.start_chat(erin.address)
    for rnd in range(3):  # each round both press Send before either has read the other's message
        for page, text in ((erin, f"e{rnd}"), (frank, f"f{rnd}")):
            page.page.get_by_label("Message", exact=True).fill(text)
        for page in (erin, frank):
            page.page.evaluate("() => document.querySelector('form.chat-composer').requestSubmit()")
        for page in (erin, frank):
            page.sees(f"e{rnd}", timeout=5000)
            page.sees(f"f{rnd}", timeout=5000)
    for page in (erin, frank):
        assert page.undecryptable() == [] and page.errors == []
        assert sorted(page.texts()) == ["e0", "e1", "e2", "f0", "f1", "f2"]
    erin.context.close()
    frank.context.close()


def test_hostile_envelopes_are_shown_as_undecryptable_and_break_nothing(pages, run, dave):
    _, bob = pages
    device = dave.state.devices[bob.address][0]
    far_ahead = {"v": 1, "h": {"dh": b64(bytes(range(32))), "pn": 0, "n": 10**9}, "c": b64(b"x" * 32)}
    for ciphertext in (b64(b"not json at all"), b64(json.dumps(far_ahead).encode())):
        run(asyncio.to_thread(dave.rest.post_message, {"to": bob.address, "device_id": dave.device_id, "envelopes": [
            {"user": bob.address, "device_id": device, "ciphertext": ciphertext}]}))
    bob.page.locator(".chat-log .chat-error").nth(1).wait_for(timeout=VISIBLE_MS)
    assert bob.undecryptable() == ["Could not decrypt: malformed envelope",
                                   "Could not decrypt: no session state decrypts this message"
                                   " (replay, or a session older than the archive)"]
    run(dave.send("still fine", to=bob.address))
    bob.sees("still fine")
    assert bob.errors == []
