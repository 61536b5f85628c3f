"""Acceptance: an admin sees the outbound queue and service health on ``/admin`` in headless
Chromium (Debian package ``chromium``); the test saves a screenshot next to its temp files."""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support.daemon import TauDaemon

pytestmark = pytest.mark.e2e

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
ENV = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0",
       # remote mail stays queued: the "smarthost" is a closed loopback port (no traffic leaves the host)
       "TAU_OUTBOUND_SMARTHOST": "127.0.0.1:9", "TAU_OUTBOUND_SMARTHOST_TLS": "none",
       "TAU_OUTBOUND_CONNECT_TIMEOUT": "1", "TAU_DKIM_SIGN": "0"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    if CHROMIUM is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium)")
    d = TauDaemon(tmp_path_factory.mktemp("ops-admin"), listeners=("submission", "http"), extra=ENV)
    try:
        d.init()
        d.cli("user", "add", ALICE, "--admin", "--password-stdin", input=PASSWORD.encode())
        d.add_user(BOB, PASSWORD)
        d.start()
        yield d
    finally:
        d.stop()


def token(d: TauDaemon, user: str) -> str:
    req = urllib.request.Request(d.url + "/oauth2/token", data=urlencode(
        {"grant_type": "password", "username": user, "password": PASSWORD}).encode())
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.loads(r.read())["access_token"]


def chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1200,900",
                           "--virtual-time-budget=8000", *extra, url],
                          capture_output=True, text=True, timeout=120)


def test_admin_sees_queue_and_health_in_chromium(daemon: TauDaemon, tmp_path: Path) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=15) as smtp:
        smtp.starttls(context=ctx)
        smtp.login(BOB, PASSWORD)
        smtp.sendmail(BOB, ["carol@far-away.test"], f"From: {BOB}\r\nTo: carol@far-away.test\r\n"
                      "Subject: stuck\r\n\r\nqueued\r\n")
    time.sleep(0.5)
    url = f"{daemon.url}/admin#token={token(daemon, ALICE)}"
    dom = chromium(tmp_path, url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-loaded="yes"' in html, html[-3000:]
    assert "carol@far-away.test" in html and "bob@example.test" in html  # the queue row
    assert "Service health" in html and ">database<" in html and 'class="ok">ok<' in html
    shot = tmp_path / "admin-dashboard.png"
    result = chromium(tmp_path, url, f"--screenshot={shot}")
    assert result.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, result.stderr[-2000:]
    keep = os.environ.get("TAU_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)


def test_non_admin_sees_no_data(daemon: TauDaemon, tmp_path: Path) -> None:
    dom = chromium(tmp_path, f"{daemon.url}/admin#token={token(daemon, BOB)}", "--dump-dom")
    assert dom.returncode == 0
    assert "administrators only" in dom.stdout and "carol@far-away.test" not in dom.stdout


def test_held_message_shows_its_state_and_release_button(daemon: TauDaemon, tmp_path: Path) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=15) as smtp:
        smtp.starttls(context=ctx)
        smtp.login(BOB, PASSWORD)
        smtp.sendmail(BOB, ["dora@far-away.test"], f"From: {BOB}\r\nTo: dora@far-away.test\r\n"
                      "Subject: hold me\r\n\r\nqueued\r\n")
    admin = token(daemon, ALICE)
    deadline = time.monotonic() + 15
    while True:
        items = json.loads(daemon.http("GET", "/api/admin/queue", token=admin)[2])["items"]
        [row] = [i for i in items if i["rcpt_to"] == ["dora@far-away.test"]] or [None]
        status = daemon.http("POST", f"/api/admin/queue/{row['id']}/hold", token=admin)[0] if row else 0
        if status == 200:
            break
        assert time.monotonic() < deadline, (row, status)
        time.sleep(0.3)
    dom = chromium(tmp_path, f"{daemon.url}/admin#token={admin}", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-loaded="yes"' in html and "Retry all now" in html
    row_html = html[html.index("dora@far-away.test"):]
    row_html = row_html[:row_html.index("</tr>")]
    assert "<td>held</td>" in row_html and ">release</button>" in row_html and ">hold</button>" not in row_html
