"""The daemon speaks sd_notify: READY once listening, WATCHDOG pings, STOPPING on SIGTERM."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from tau.app.sdnotify import notify
from tests.support.daemon import TauDaemon


class _Collector(threading.Thread):
    """Reads the notify socket all the time, as systemd does, so the datagram queue never fills."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self._sock = sock
        self._halt = threading.Event()
        self.seen: list[str] = []

    def run(self) -> None:
        self._sock.settimeout(0.05)
        while not self._halt.is_set():
            try:
                self.seen.append(self._sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_for(self, wanted: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(wanted in s for s in list(self.seen)):
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._halt.set()
        self.join(2)


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield path, sock
    sock.close()


def test_notify_without_systemd_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_notify_rejects_relative_socket_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/path")
    assert notify("READY=1") is False


def test_daemon_reports_ready_watchdog_and_stopping(tmp_path: Path, notify_socket) -> None:
    path, sock = notify_socket
    collector = _Collector(sock)
    collector.start()
    daemon = TauDaemon(tmp_path, listeners=("http",),
                       env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}).init()
    daemon.start("http")
    try:
        assert collector.wait_for("READY=1", 20), collector.seen
        assert collector.wait_for("WATCHDOG=1", 5), collector.seen
    finally:
        took = daemon.stop()
    try:
        assert took < 5
        assert collector.wait_for("STOPPING=1", 2), collector.seen
    finally:
        collector.close()


def test_notify_never_blocks_when_nobody_reads(notify_socket, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    started = time.monotonic()
    results = [notify("WATCHDOG=1") for _ in range(200)]   # far beyond net.unix.max_dgram_qlen
    assert time.monotonic() - started < 2
    assert results[0] is True and False in results
