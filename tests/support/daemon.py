"""Run the real daemon: ``tau init`` + ``tau user add`` + ``twistd -n tau`` on free loopback ports."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


#: listening ports come from below the kernel's ephemeral range (32768-60999 on Linux): a port a
#: test daemon must get back after a restart (kill -9 tests) is then never taken meanwhile as the
#: local port of some client connection, which the suite's parallel workers open by the thousand
LISTEN_PORTS = (20000, 32000)


#: not the ``random`` module's generator: tests seed that one for repeatable runs, and two pytest
#: workers that both ran such a test drew the same "free" ports and started daemons on them at once
_PICK = random.SystemRandom()


def _worker_range() -> tuple[int, int]:
    """This pytest-xdist worker's own slice of LISTEN_PORTS, so two workers never pick one port."""
    worker, workers = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and workers.isdigit() and int(workers) > 0):
        return LISTEN_PORTS
    size = (LISTEN_PORTS[1] - LISTEN_PORTS[0]) // int(workers)
    lo = LISTEN_PORTS[0] + size * (int(worker[2:]) % int(workers))
    return lo, lo + size


def free_port() -> int:
    """A port nobody listens on now, outside the ephemeral range (see LISTEN_PORTS)."""
    lo, hi = _worker_range()
    for _ in range(200):
        port = _PICK.randrange(lo, hi)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the range is crowded: any port the kernel gives
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TauDaemon:
    """A data dir made by ``tau init`` and a ``twistd -n tau`` process on free ports."""

    def __init__(self, folder: Path, database_url: str | None = None, env: dict[str, str] | None = None,
                 listeners: tuple[str, ...] = ("smtp", "submission", "submissions", "imap", "imaps", "http", "https"),
                 extra: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.config = self.data / "tau.ini"
        self.ports = {name: free_port() for name in listeners}
        self.env = dict(os.environ)
        self.env.pop("TAU_CONFIG", None)
        if database_url:
            self.env["TAU_DATABASE_URL"] = database_url
        for name in ("smtp", "submission", "submissions", "imap", "imaps", "http", "https", "managesieve"):
            kind = "ssl" if name in ("submissions", "imaps", "https") else "tcp"
            self.env[f"TAU_LISTEN_{name.upper()}"] = (
                f"{kind}:{self.ports[name]}:interface=127.0.0.1" if name in self.ports else "")
        # `tau init --dev-ports` writes public_url for the dev port; these daemons listen elsewhere (and
        # nodes of one cluster must share an issuer): links and the issuer come from hostname, as before
        self.env["TAU_TAU_PUBLIC_URL"] = ""
        self.env.update(extra or {})
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "twistd.log"

    def cli(self, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        argv = [tool("tau"), *args]
        if args and args[0] != "init":
            argv += ["--config", str(self.config)]
        result = subprocess.run(argv, input=input, capture_output=True, env=self.env, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} failed ({result.returncode}): {result.stderr.decode()}")
        return result

    def init(self, domain: str = "example.test") -> "TauDaemon":
        self.cli("init", str(self.data), "--domain", domain, "--dev-ports", "--hostname", "localhost")
        return self

    def add_user(self, address: str, password: str = "secret-Pa55") -> None:
        self.cli("user", "add", address, "--password-stdin", input=password.encode() + b"\n")

    def start(self, wait_for: str = "http", timeout: float = 30.0, pidfile: str | None = "",
              cwd: Path | None = None) -> "TauDaemon":
        """``pidfile=None`` leaves twistd's --pidfile at its default (tau then keeps it in data_dir)."""
        self._logfh = open(self.log, "wb")  # noqa: SIM115 - open while the daemon runs, closed in stop()
        argv = [tool("twistd"), "-n", *([] if pidfile is None else [f"--pidfile={pidfile}"]), "tau",
                "--config", str(self.config)]
        self.proc = subprocess.Popen(argv, cwd=cwd or self.folder, env=self.env, stdout=self._logfh,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        # every listener this daemon was given, ``wait_for`` first: listeners bind one after
        # another, so a client of another port could otherwise arrive in the gap
        pending = [self.ports[wait_for]] if wait_for in self.ports else []
        pending += [p for name, p in self.ports.items() if name != wait_for]
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"twistd exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5):
                    pending.pop(0)
            except OSError:
                time.sleep(0.1)
        if pending:
            raise AssertionError(f"twistd did not listen on {pending[0]}:\n{self.log.read_text()[-3000:]}")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM and wait; returns seconds taken."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._logfh.close()
        return time.monotonic() - started

    def http(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
             token: str | None = None) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()

    def token(self, username: str, password: str = "secret-Pa55") -> str:
        import json
        from urllib.parse import urlencode

        status, _, body = self.http("POST", "/oauth2/token", urlencode(
            {"grant_type": "password", "username": username, "password": password}).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200, body
        return json.loads(body)["access_token"]


def stop_all(daemons: list[Any]) -> None:
    for d in daemons:
        d.stop()
