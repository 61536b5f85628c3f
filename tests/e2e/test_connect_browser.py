"""Issue 8 acceptance in a real browser: headless Chromium (Debian's ``chromium``) opens ``/call/{id}``
in two pages with fake camera/microphone; each must decode the other's video (``getStats``
``framesDecoded`` > 0). Chromium is driven over the DevTools protocol with ``tau.client.ws.Socket``.
A screenshot of each page is saved (in the test's tmp dir, or ``$TAU_TEST_ARTIFACTS`` if set)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path

import pytest

from tau.client.ws import Socket
from tests.support.chromium import CHROMIUM, DevTools, launch
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e
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
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("http",)).init()
    for user in ("alice", "bob"):
        d.add_user(f"{user}@example.test")
    d.start()
    d.tokens = {u: d.token(f"{u}@example.test") for u in ("alice", "bob")}
    yield d
    d.stop()


@pytest.fixture
def browser(tmp_path):
    with launch(FLAGS, tmp_path / "profile") as endpoint:
        yield endpoint


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
