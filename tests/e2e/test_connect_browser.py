"""Issue 8 acceptance in a real browser: headless Chromium (Debian's ``chromium``) opens ``/call/{id}``
in two pages with fake camera/microphone; each must decode the other's video (``getStats``
``framesDecoded`` > 0). Chromium is driven over the DevTools protocol with ``tau.client.ws.Socket``.
A screenshot of each page is saved (in the test's tmp dir, or ``$TAU_TEST_ARTIFACTS`` if set)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tau.client.ws import Socket
from tests.support.daemon import TauDaemon
from tests.support.databases import engines

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
         "--use-fake-ui-for-media-stream", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--window-size=1280,720", "--remote-debugging-port=0",
         # host candidates as IP addresses: mDNS names need a responder this sandbox may not have
         "--disable-features=WebRtcHideLocalIpsWithMdns"]


@pytest.fixture(scope="module", params=engines())
def daemon(request, tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    folder = tmp_path_factory.mktemp(f"connect-browser-{request.param}")
    url = None
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres_db")
        pg.truncate_all()
        url = pg.url
    d = TauDaemon(folder, database_url=url, listeners=("http",)).init()
    for user in ("alice", "bob"):
        d.add_user(f"{user}@example.test")
    d.start()
    d.tokens = {u: d.token(f"{u}@example.test") for u in ("alice", "bob")}
    yield d
    d.stop()


class DevTools:
    """Just enough of the Chrome DevTools Protocol: commands with ids, flattened page sessions."""

    def __init__(self, sock: Socket) -> None:
        self.sock, self._ids = sock, itertools.count(1)

    async def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.sock.send(message)
        while True:
            frame = await self.sock.recv(30)
            if frame.get("id") == ident:
                if "error" in frame:
                    raise RuntimeError(f"{method}: {frame['error']}")
                return frame["result"]

    async def open(self, url: str) -> str:
        target = (await self.call("Target.createTarget", {"url": url}))["targetId"]
        return (await self.call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]

    async def evaluate(self, session: str, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                      "returnByValue": True}, session)
        return result["result"].get("value")


@pytest.fixture
def browser(tmp_path):
    profile = tmp_path / "profile"
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("chromium did not start its DevTools endpoint")
        time.sleep(0.1)
    port, path = port_file.read_text().splitlines()[:2]
    yield f"http://127.0.0.1:{port}", path
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.parametrize("mode", ["p2p", "sfu"])
def test_two_chromium_pages_see_each_others_video(daemon, browser, tmp_path, mode):
    if mode == "sfu":
        pytest.importorskip("aiortc", reason="the SFU needs aiortc (the connect extra)")
    body = json.dumps({"title": f"browser {mode}", "participants": ["bob@example.test"], "mode": mode}).encode()
    status, _, raw = daemon.http("POST", "/api/calls", body, {"Content-Type": "application/json"},
                                 token=daemon.tokens["alice"])
    assert status == 201, raw
    call = json.loads(raw)
    out = Path(os.environ.get("TAU_TEST_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)

    async def scenario() -> None:
        sock = await Socket.connect(browser[0], browser[1], None, max_size=64 * 1024 * 1024)
        cdp = DevTools(sock)
        pages = [await cdp.open(f"{daemon.url}/call/{call['id']}#access_token={daemon.tokens[u]}")
                 for u in ("alice", "bob")]
        decoded = [0, 0]
        deadline = time.monotonic() + 45
        while min(decoded) <= 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            decoded = [await cdp.evaluate(p, "window.tauCall ? window.tauCall.framesDecoded() : -1") for p in pages]
        states = [await cdp.evaluate(p, "JSON.stringify({status: document.getElementById('status').textContent,"
                                        " errors: window.tauCall && window.tauCall.state.errors,"
                                        " tiles: document.querySelectorAll('.tile').length})") for p in pages]
        for index, page in enumerate(pages):
            shot = await cdp.call("Page.captureScreenshot", {"format": "png"}, page)
            (out / f"call-{mode}-{index}.png").write_bytes(base64.b64decode(shot["data"]))
        assert min(decoded) > 10, (decoded, states)
        for state in states:
            assert json.loads(state)["tiles"] == 2, states
        await sock.close()

    asyncio.run(asyncio.wait_for(scenario(), 90))
    assert (out / f"call-{mode}-0.png").stat().st_size > 1000
