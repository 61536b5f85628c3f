"""Issue 20 acceptance through the ``tau chat`` command (subprocesses) against ``twistd -n tau``.

Two and three users with two devices each write across each other the way the issue saw a
message lost: gina sends g1, hank reads it, gina sends g2, hank answers before reading g2.
Every device then shows every message meant for it exactly once, and none says
"could not decrypt" — also while a device's ``listen`` runs during its own ``send``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import TauDaemon, tool
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e
PASSWORD = "secret-Pa55"
USERS = ("gina", "hank", "ivy")


@pytest.fixture(scope="module", params=engines())
def daemon(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"chat-cli-{request.param}")
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("http",)).init()
    for user in USERS:
        d.add_user(f"{user}@example.test", PASSWORD)
    d.start()
    yield d
    d.stop()


class Chat:
    """One device: a state file driven only through ``tau chat``."""

    def __init__(self, daemon: TauDaemon, folder: Path, user: str, n: int) -> None:
        self.address, self.state, self.env = f"{user}@example.test", str(folder / f"{user}{n}.json"), daemon.env
        self.shown: list[dict] = []
        self.run("login", daemon.url, self.address, "--password-stdin", stdin=PASSWORD + "\n")

    def run(self, *argv: str, stdin: str = "") -> str:
        done = subprocess.run([tool("tau"), "chat", *argv, "--state", self.state], input=stdin, text=True,
                              capture_output=True, env=self.env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def send(self, to: "Chat", text: str) -> None:
        assert self.run("send", to.address, text).startswith("sent #")

    def listen(self, count: int | None = None, timeout: float = 4.0) -> list[str]:
        args = ["listen", "--json", "--timeout", str(timeout)] + (["--count", str(count)] if count else [])
        return self._record(self.run(*args))

    def listen_in_background(self, timeout: float = 6.0) -> subprocess.Popen[str]:
        return subprocess.Popen([tool("tau"), "chat", "listen", "--json", "--timeout", str(timeout), "--state",
                                 self.state], stdout=subprocess.PIPE, text=True, env=self.env)

    def _record(self, out: str) -> list[str]:
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        self.shown += lines
        return [m["text"] for m in lines if m["notice"] is None]


def _devices(daemon: TauDaemon, folder: Path, users: tuple[str, ...]) -> dict[str, list[Chat]]:
    return {u: [Chat(daemon, folder, u, n) for n in (1, 2)] for u in users}


def _check(devices: dict[str, list[Chat]], sent: list[tuple[Chat, Chat, str]]) -> None:
    for chats in devices.values():
        for chat in chats:
            chat.listen()
            errors = [m for m in chat.shown if m["error"] is not None]
            assert errors == [], errors
            texts = sorted(m["text"] for m in chat.shown if m["notice"] is None)
            meant = sorted(text for sender, to, text in sent if chat is not sender
                           and chat.address in (sender.address, to.address))
            assert texts == meant, chat.state


def test_crossing_sends_between_two_users_with_two_devices_each(daemon, tmp_path):
    d = _devices(daemon, tmp_path, ("gina", "hank"))
    (g1, g2), (h1, h2) = d["gina"], d["hank"]
    sent = [(g1, h1, "g1")]
    g1.send(h1, "g1")
    assert h1.listen(count=1) == ["g1"]  # hank reads g1
    g1.send(h1, "g2")  # gina writes again, still on her first (PreKey) session
    h1.send(g1, "h1")  # hank answers before reading g2
    sent += [(g1, h1, "g2"), (h1, g1, "h1")]
    assert h1.listen(count=1) == ["g2"]  # the message issue 20 lost
    for i in range(3):  # crossing from the second devices, nobody reading in between
        g2.send(h1, f"g2-{i}")
        h2.send(g1, f"h2-{i}")
        sent += [(g2, h1, f"g2-{i}"), (h2, g1, f"h2-{i}")]
    _check(d, sent)


def test_send_while_the_same_device_listens(daemon, tmp_path):
    d = _devices(daemon, tmp_path, ("gina", "hank"))
    (g1, _), (h1, _) = d["gina"], d["hank"]
    g1.send(h1, "hello")
    sent = [(g1, h1, "hello")]
    listener = h1.listen_in_background()
    for i in range(3):  # hank's listen decrypts while hank's send process encrypts: one state file
        g1.send(h1, f"g-{i}")
        h1.send(g1, f"h-{i}")
        sent += [(g1, h1, f"g-{i}"), (h1, g1, f"h-{i}")]
    out, _ = listener.communicate(timeout=60)
    h1._record(out)
    _check(d, sent)


def test_three_users_two_devices_each_write_in_a_ring_at_once(daemon, tmp_path):
    d = _devices(daemon, tmp_path, USERS)
    sent: list[tuple[Chat, Chat, str]] = []
    ring = [("gina", "hank"), ("hank", "ivy"), ("ivy", "gina")]
    for rnd in range(2):
        for a, b in ring:  # everyone writes before anyone reads, from alternating devices
            sender, to = d[a][rnd], d[b][1 - rnd]
            sender.send(to, f"{a}>{b} {rnd}")
            to.send(sender, f"{b}>{a} {rnd}")
            sent += [(sender, to, f"{a}>{b} {rnd}"), (to, sender, f"{b}>{a} {rnd}")]
        d["hank"][0].listen(count=1, timeout=2)  # one device reads part-way, then more crossing
    _check(d, sent)


def test_a_reinstalled_device_is_shown_as_a_safety_number_change(daemon, tmp_path):
    d = _devices(daemon, tmp_path, ("gina", "hank"))
    (g1, g2), (h1, _) = d["gina"], d["hank"]
    g1.send(h1, "before")
    h1.listen()
    h1.send(g1, "reply")
    assert g2.listen() == ["before", "reply"]  # gina's second device now knows hank's first identity
    device = json.loads(Path(h1.state).read_text())["device_id"]
    Path(h1.state).unlink()
    h1.shown = []
    h1.run("login", daemon.url, h1.address, "--password-stdin", "--device-id", str(device),
           stdin=PASSWORD + "\n")
    out = g1.run("send", h1.address, "after")  # the server says 'stale': gina fetches the new bundle
    assert f"[safety number with {h1.address} device {device} changed" in out
    assert h1.listen() == ["after"]
    h1.send(g1, "hello again")  # gina's other device meets hank's new identity
    g2.listen()
    assert any(f"safety number with {h1.address} device {device} changed" in (m["notice"] or "")
               for m in g2.shown)


def test_listen_count_shows_the_rest_next_time(daemon, tmp_path):
    d = _devices(daemon, tmp_path, ("gina", "hank"))
    (g1, _), (h1, _) = d["gina"], d["hank"]
    for i in range(3):
        g1.send(h1, f"m{i}")
    assert h1.listen(count=1) == ["m0"]  # m1 and m2 arrived (and were acknowledged) too
    assert h1.listen() == ["m1", "m2"]  # kept in the state file, not lost
