"""Issue 13 item 8 in a real browser (Debian's ``chromium``, driven over the DevTools protocol).

An admin signs in on ``/admin``; afterwards no token is anywhere page script can read it
(``sessionStorage``, ``localStorage``, ``document.cookie``) while the dashboard and the admin API
work. A state-changing request carrying the cookie but not the CSRF header is 403; a real
cross-site form post (from another site, ``localhost`` vs ``127.0.0.1``) does not even carry the
cookie; an uploaded ``evil.html`` opened from a share link is downloaded, never rendered; signing
out ends the session. Skipped cleanly when Chromium is not installed.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tau.client.ws import Socket
from tests.support.chromium import CHROMIUM, DevTools, launch
from tests.support.daemon import TauDaemon

pytestmark = pytest.mark.e2e
ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1200,900", "--remote-debugging-port=0"]
ENV = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    if CHROMIUM is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium)")
    d = TauDaemon(tmp_path_factory.mktemp("admin-session"), listeners=("http",), extra=ENV)
    try:
        d.init()
        d.cli("user", "add", ALICE, "--admin", "--password-stdin", input=PASSWORD.encode())
        d.start()
        yield d
    finally:
        d.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with launch(FLAGS, tmp_path / "profile") as endpoint:
        yield endpoint


@pytest.fixture
def attacker(daemon: TauDaemon) -> Iterator[str]:
    """Another site (``localhost``, not ``127.0.0.1``) whose page auto-posts a form to the admin API."""
    page = (f'<form id=f method=POST enctype=text/plain action="{daemon.url}/api/admin/domains">'
            '<input name=\'{"name":"evil.test","x":"\' value=\'"}\'></form><script>f.submit()</script>').encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


STORAGE = ("JSON.stringify({session: Object.keys(sessionStorage), local: Object.keys(localStorage),"
           " cookie: document.cookie})")


def fetch(path: str, method: str = "GET", headers: str = "{}", body: str = "undefined") -> str:
    return (f"fetch({json.dumps(path)}, {{method: {json.dumps(method)}, headers: {headers}, body: {body}}})"
            ".then(async r => JSON.stringify({status: r.status, body: await r.text()}))")


def test_admin_session_holds_no_readable_token_and_needs_csrf(daemon: TauDaemon, browser: tuple[str, str],
                                                             attacker: str) -> None:
    status, _, raw = daemon.http("POST", "/api/files?path=/evil.html", b"<script>document.title='pwned'</script>",
                                 {"Content-Type": "text/html"}, token=daemon.token(ALICE, PASSWORD))
    assert status == 201, raw
    status, _, raw = daemon.http("POST", "/api/shares", json.dumps({"file_id": json.loads(raw)["id"]}).encode(),
                                 {"Content-Type": "application/json"}, token=daemon.token(ALICE, PASSWORD))
    link = json.loads(raw)["url"].rsplit("/s/", 1)[1]

    async def scenario() -> None:
        sock = await Socket.connect(browser[0], browser[1], None, max_size=64 * 1024 * 1024)
        cdp = DevTools(sock, strict=True)
        page = await cdp.open(f"{daemon.url}/admin")
        await cdp.until(page, "!document.getElementById('login').classList.contains('hidden')")
        await cdp.evaluate(page, f"(() => {{ const f = document.getElementById('login');"
                                 f" f.username.value = {json.dumps(ALICE)}; f.password.value = {json.dumps(PASSWORD)};"
                                 " f.requestSubmit(); })()")
        await cdp.until(page, "document.body.dataset.loaded === 'yes'")
        assert ALICE in await cdp.evaluate(page, "document.getElementById('users').textContent")
        storage = json.loads(await cdp.evaluate(page, STORAGE))
        assert storage == {"session": [], "local": [], "cookie": ""}, storage
        # the admin API works from the page (the HttpOnly cookie rides along)
        users = json.loads(await cdp.evaluate(page, fetch("/api/admin/users")))
        assert users["status"] == 200 and ALICE in users["body"]
        # cookie without the CSRF header: refused
        forged = json.loads(await cdp.evaluate(page, fetch("/api/admin/domains", "POST",
                                                           "{'Content-Type': 'application/json'}",
                                                           "JSON.stringify({name: 'forged.test'})")))
        assert forged["status"] == 403 and json.loads(forged["body"])["error"] == "csrf_failed", forged
        # a real cross-site form post: SameSite=Strict keeps the cookie home, so it is not even signed in
        evil = await cdp.open(attacker)
        await cdp.until(evil, "location.href.includes('/api/admin/domains') && document.body.innerText")
        assert '"unauthorized"' in await cdp.evaluate(evil, "document.body.innerText")
        domains = json.loads(await cdp.evaluate(page, fetch("/api/admin/domains")))
        assert domains["status"] == 200 and "evil.test" not in domains["body"] and "forged.test" not in domains["body"]
        # user content opened in the browser: downloaded (attachment), never rendered on this origin
        # (a browser opening the bare link gets the share page, issue 19; its Download button is this URL)
        content = await cdp.open("about:blank")
        await cdp.call("Page.enable", {}, content)
        await cdp.call("Browser.setDownloadBehavior", {"behavior": "deny"})
        await cdp.evaluate(content, f"location.href = {json.dumps(daemon.url + '/s/' + link + '?download=1')}")
        await asyncio.sleep(2)
        assert await cdp.evaluate(content, "document.title") != "pwned"
        assert await cdp.evaluate(content, "location.href") == "about:blank"
        # signing out ends the session: the API answers 401 afterwards
        await cdp.evaluate(page, "document.getElementById('logout').click()")
        await cdp.until(page, "!document.getElementById('login').classList.contains('hidden')")
        after = json.loads(await cdp.evaluate(page, fetch("/api/admin/users")))
        assert after["status"] == 401, after
        await sock.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 120))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- daemon log ---\n{daemon.log.read_text()[-4000:]}") from None
