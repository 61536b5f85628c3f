"""Several real ``twistd -n tau`` nodes on one PostgreSQL, one Redis and one S3 endpoint.

Used by ``tests/cluster``, ``tests/e2e/test_cluster_*`` and ``tests/bench/bench_cluster.py``.
A private ``redis-server`` (not the machine's shared one on 6379, which other test runs use) lets
a test restart Redis; a ``moto_server`` stands in for S3. Every node shares node 1's secret and
TLS material, so a token issued by one node is accepted by the others and blobs encrypted by
one node are readable by all.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.daemon import TauDaemon, free_port


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


class RedisServer:
    """A throwaway ``redis-server`` on a free port: no persistence, restartable on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "redis-server")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def cli(self, *args: str) -> str:
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()


class MotoServer:
    """An S3-protocol server (moto) on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str | None:
        found = Path(sys.executable).parent / "moto_server"
        return str(found) if found.exists() else shutil.which("moto_server")

    def start(self) -> "MotoServer":
        binary = self.binary()
        if binary is None:
            raise RuntimeError("moto_server not installed")
        self.proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})
        _wait_port(self.port, self.proc, "moto_server")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def env(self, bucket: str = "tau-cluster") -> dict[str, str]:
        return {"TAU_BLOBS_BACKEND": "s3", "TAU_BLOBS_S3_ENDPOINT": f"127.0.0.1:{self.port}",
                "TAU_BLOBS_S3_ACCESS_KEY": "testing", "TAU_BLOBS_S3_SECRET_KEY": "testing",
                "TAU_BLOBS_S3_BUCKET": bucket, "TAU_BLOBS_S3_SECURE": "false"}


class Cluster:
    """``n`` nodes with a shared database, Redis URL, blob store and secret."""

    def __init__(self, folder: Path, n: int, database_url: str, env: dict[str, str],
                 listeners: tuple[str, ...] = ("smtp", "submission", "imap", "http")) -> None:
        self.nodes = [TauDaemon(folder / f"node{i}", database_url=database_url, env=env, listeners=listeners)
                      for i in range(n)]

    def init(self, users: tuple[str, ...] = (), password: str = "secret-Pa55") -> "Cluster":
        first = self.nodes[0]
        first.folder.mkdir(parents=True, exist_ok=True)
        first.init()
        for user in users:
            first.add_user(user, password)
        for node in self.nodes[1:]:
            node.folder.mkdir(parents=True, exist_ok=True)
            node.init()
            shutil.copy2(first.data / "secret", node.data / "secret")
            if (first.data / "tls").exists():
                shutil.rmtree(node.data / "tls", ignore_errors=True)
                shutil.copytree(first.data / "tls", node.data / "tls")
        return self

    def start(self) -> "Cluster":
        for node in self.nodes:
            node.start()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            try:
                node.stop()
            except Exception:  # noqa: BLE001 - a node killed by the test is already gone
                pass

    @staticmethod
    def kill(node: TauDaemon) -> None:
        """SIGKILL: no shutdown hooks, the way a crashed machine leaves."""
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(10)

    def __getitem__(self, index: int) -> Any:
        return self.nodes[index]
