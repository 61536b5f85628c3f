"""Issue 18 items 6 and 8 on the real daemon: two nodes started from the same folder with their own
data dirs both run (twistd's pid file lives in each data dir), and a node whose optional parts are
down serves, answers ``degraded`` and logs why soon after start."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from tests.support.daemon import TauDaemon, stop_all


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_nodes_from_one_folder_each_keep_their_pid_file(tmp_path: Path) -> None:
    nodes = [TauDaemon(tmp_path / name, listeners=("http", "smtp")).init() for name in ("a", "b")]
    try:
        for node in nodes:
            node.start(pidfile=None, cwd=tmp_path)  # twistd's default pid file, same working folder
        for node in nodes:
            assert node.proc is not None and node.proc.poll() is None
            assert (node.data / "twistd.pid").read_text().strip() == str(node.proc.pid)
            status, _, _ = node.http("GET", "/api/health")
            assert status == 200
        assert not (tmp_path / "twistd.pid").exists()
    finally:
        stop_all(nodes)
    assert not any((node.data / "twistd.pid").exists() for node in nodes)


def test_an_explicit_empty_pidfile_writes_none(tmp_path: Path) -> None:
    node = TauDaemon(tmp_path / "n", listeners=("http",)).init()
    try:
        node.start(pidfile="")
        assert not (node.data / "twistd.pid").exists() and not (node.folder / "twistd.pid").exists()
    finally:
        stop_all([node])


def test_optional_parts_down_are_degraded_and_logged_at_start(tmp_path: Path) -> None:
    env = {"TAU_LDAP_URL": f"ldap://127.0.0.1:{closed_port()}", "TAU_LDAP_BASE_DN": "dc=example,dc=test",
           "TAU_LDAP_TIMEOUT": "1", "TAU_SPAM_RSPAMD_URL": f"http://127.0.0.1:{closed_port()}"}
    node = TauDaemon(tmp_path / "n", listeners=("http", "smtp"), env=env).init()
    try:
        node.start()
        status, _, body = node.http("GET", "/api/health")
        health = json.loads(body)
        assert status == 200 and health["status"] == "degraded", health
        assert set(health["degraded"]) == {"ldap", "rspamd"} and "unreachable" in health["degraded"]["rspamd"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "health degraded" not in node.log.read_text():
            time.sleep(0.3)
        lines = [json.loads(line) for line in node.log.read_text().splitlines() if "health degraded" in line]
        assert lines and "ldap: " in lines[0]["msg"] and "rspamd: " in lines[0]["msg"], node.log.read_text()[-2000:]
    finally:
        stop_all([node])
