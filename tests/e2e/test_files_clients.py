"""Real clients against the real daemon: curl (DAV and REST), rclone's webdav backend, S3 blobs on moto."""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.daemon import TauDaemon

pytestmark = pytest.mark.e2e
ALICE, PASSWORD = "alice@example.test", "secret-Pa55"
QUIET = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}


def start(folder: Path, **extra: str) -> TauDaemon:
    d = TauDaemon(folder, listeners=("http",), extra={**QUIET, **extra}).init()
    d.add_user(ALICE, PASSWORD)
    return d.start()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    d = start(tmp_path_factory.mktemp("clients"))
    yield d
    d.stop()


def curl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "-u", f"{ALICE}:{PASSWORD}", *args], input=data, capture_output=True,
                          timeout=60)


def code(*args: str, data: bytes | None = None) -> int:
    out = curl("-o", "/dev/null", "-w", "%{http_code}", *args, data=data)
    return int(out.stdout.decode() or 0)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_dav_round_trip(daemon: TauDaemon, tmp_path: Path) -> None:
    base = f"{daemon.url}/dav/files/{ALICE}"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * 1024 * 1024 + 3))
    assert code("-X", "MKCOL", f"{base}/up") == 201
    assert code("-T", str(big), f"{base}/up/big.bin") == 201
    assert code("-T", "-", "-H", "Transfer-Encoding: chunked", f"{base}/up/chunked.bin", data=b"z" * 300000) == 201
    got = curl(f"{base}/up/big.bin").stdout
    assert hashlib.sha256(got).digest() == hashlib.sha256(big.read_bytes()).digest()
    part = curl("-r", "1000-1999", f"{base}/up/big.bin").stdout
    assert part == big.read_bytes()[1000:2000]
    listing = curl("-X", "PROPFIND", "-H", "Depth: 1", f"{base}/up/").stdout.decode()
    assert "big.bin" in listing and "chunked.bin" in listing
    assert code("-X", "MOVE", "-H", f"Destination: {base}/up/moved.bin", f"{base}/up/big.bin") == 201
    assert code("-X", "DELETE", f"{base}/up/moved.bin") == 204
    assert code(f"{daemon.url}/dav/files/bob@example.test/") == 403


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_rest_upload_and_share(daemon: TauDaemon, tmp_path: Path) -> None:
    token = daemon.token(ALICE, PASSWORD)
    auth = ["-H", f"Authorization: Bearer {token}"]
    doc = tmp_path / "doc.txt"
    doc.write_text("multipart body\n" * 1000)
    out = subprocess.run(["curl", "-sS", *auth, "-F", f"file=@{doc}", f"{daemon.url}/api/files?path=/"],
                         capture_output=True, timeout=60)
    meta = json.loads(out.stdout)
    assert meta["name"] == "doc.txt" and meta["size"] == doc.stat().st_size
    out = subprocess.run(["curl", "-sS", *auth, "-H", "Content-Type: application/json", "-d",
                          json.dumps({"file_id": meta["id"]}), f"{daemon.url}/api/shares"], capture_output=True)
    link = json.loads(out.stdout)["token"]
    public = subprocess.run(["curl", "-sS", f"{daemon.url}/s/{link}"], capture_output=True).stdout
    assert public == doc.read_bytes()


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed (apt-get install rclone)")
def test_rclone_copies_a_folder_up_and_down(daemon: TauDaemon, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "nested" / "deeper").mkdir(parents=True)
    for i in range(20):
        (src / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    (src / "nested" / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (src / "nested" / "deeper" / "ünïcode name.txt").write_text("nfc")
    obscured = subprocess.run(["rclone", "obscure", PASSWORD], capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "RCLONE_CONFIG_TAU_TYPE": "webdav", "RCLONE_CONFIG_TAU_VENDOR": "other",
           "RCLONE_CONFIG_TAU_URL": f"{daemon.url}/dav/files/{ALICE}/", "RCLONE_CONFIG_TAU_USER": ALICE,
           "RCLONE_CONFIG_TAU_PASS": obscured, "RCLONE_CONFIG": str(tmp_path / "none.conf")}
    up = subprocess.run(["rclone", "copy", str(src), "tau:backup"], env=env, capture_output=True, text=True,
                        timeout=120)
    assert up.returncode == 0, up.stderr
    down = subprocess.run(["rclone", "copy", "tau:backup", str(tmp_path / "back")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    cmp = filecmp.dircmp(src, tmp_path / "back")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    assert filecmp.cmp(src / "nested" / "blob.bin", tmp_path / "back" / "nested" / "blob.bin", shallow=False)
    check = subprocess.run(["rclone", "check", str(src), "tau:backup"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def _moto() -> str | None:
    found = Path(sys.executable).parent / "moto_server"
    return str(found) if found.exists() else shutil.which("moto_server")


@pytest.mark.skipif(_moto() is None or shutil.which("curl") is None, reason="moto_server or curl missing")
def test_daemon_on_s3_blobs(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = subprocess.Popen([_moto(), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        d = start(tmp_path, TAU_BLOBS_BACKEND="s3", TAU_BLOBS_S3_ENDPOINT=f"127.0.0.1:{port}",
                  TAU_BLOBS_S3_ACCESS_KEY="testing", TAU_BLOBS_S3_SECRET_KEY="testing", TAU_BLOBS_S3_BUCKET="tau",
                  TAU_BLOBS_S3_SECURE="false")
        try:
            base = f"{d.url}/dav/files/{ALICE}"
            data = os.urandom(40 * 1024 * 1024 + 11)  # multipart: 16 MiB parts
            assert code("-T", "-", f"{base}/on-s3.bin", data=data) == 201
            assert hashlib.sha256(curl(f"{base}/on-s3.bin").stdout).digest() == hashlib.sha256(data).digest()
            assert curl("-r", "20000000-20000099", f"{base}/on-s3.bin").stdout == data[20000000:20000100]
            assert code("-X", "DELETE", f"{base}/on-s3.bin") == 204
        finally:
            d.stop()
    finally:
        moto.terminate()
        moto.wait(10)


@pytest.mark.skipif(shutil.which("cadaver") is None, reason="cadaver not installed (apt-get install cadaver)")
def test_cadaver_session(daemon: TauDaemon, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {ALICE} password {PASSWORD}\n")
    netrc.chmod(0o600)
    (tmp_path / "note.txt").write_text("hello cadaver\n")
    script = (f"mkcol cad\ncd cad\nput {tmp_path / 'note.txt'}\nmove note.txt moved.txt\nlock moved.txt\n"
              f"unlock moved.txt\npropset moved.txt color red\npropget moved.txt color\n"
              f"get moved.txt {tmp_path / 'back.txt'}\nquit\n")
    out = subprocess.run(["cadaver", f"{daemon.url}/dav/files/{ALICE}/"], input=script, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "HOME": str(home)})
    assert "failed" not in out.stdout.lower(), out.stdout
    assert "Value of color is: red" in out.stdout
    assert (tmp_path / "back.txt").read_text() == "hello cadaver\n"
