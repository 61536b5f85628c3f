"""tau.service's sandbox, applied without systemd (containers where it is not PID 1 cannot start the
unit, and ``systemd-run`` needs a running manager): the daemon runs the unit's ExecStart under the
same kernel restrictions and every service still works — the SFU worker included.

Emulated: SystemCallFilter=@system-service ~@privileged @resources (EPERM), MemoryDenyWriteExecute,
NoNewPrivileges, CapabilityBoundingSet/AmbientCapabilities=CAP_NET_BIND_SERVICE, ProtectSystem=strict
with ReadWritePaths (the root read-only, the data dir and /tmp writable), ProtectHome,
ProtectProc=invisible + ProcSubset=pid, a private mount and PID namespace. Not emulated: User=tau
(uid 0 stays, without capabilities: the test's folders are root's), PrivateDevices, ProtectHome
for a home that holds the interpreter (pyenv), the namespace
and address-family restrictions.
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tau.connect.service import SFU_START_GRACE
from tests.support.daemon import TauDaemon, stop_all

ROOT = Path(__file__).resolve().parents[2]
NEEDS = ("unshare", "mount", "setpriv", "systemd-analyze")

SETUP = """set -e
mount --make-rprivate /
mount -t proc -o hidepid=invisible,subset=pid proc /proc
mount --bind /tmp /tmp
for home in $HIDE_HOMES; do mount -t tmpfs -o ro,mode=0755 tmpfs $home; done
mount -o remount,bind,ro /
exec setpriv --no-new-privs --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \\
    --bounding-set=-all,+net_bind_service "$@"
"""


def _runnable() -> str | None:
    missing = [tool for tool in NEEDS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    if os.geteuid() != 0:
        return "needs root (mount namespaces)"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        return "cannot create a mount namespace here"
    return None


def sandboxed(argv: list[str]) -> list[str]:
    # --kill-child: stopping unshare also stops the namespace's process (else its twistd outlives the test)
    return ["unshare", "--mount", "--pid", "--fork", "--kill-child=SIGTERM", "--mount-proc", "sh", "-c", SETUP,
            "sandbox", sys.executable, "-m", "tests.support.sandbox", *argv]


def sandbox_env() -> dict[str, str]:
    # ProtectHome, but for a home holding this interpreter or checkout (pyenv, a developer's clone)
    used = (os.path.realpath(sys.executable), str(ROOT), sys.prefix)
    hide = [h for h in ("/home", "/root") if os.path.isdir(h) and not any(p.startswith(h + "/") for p in used)]
    return {"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "HIDE_HOMES": " ".join(hide)}


PROBE = """
import mmap, os, socket
def refused(fn):
    try:
        fn()
    except OSError as exc:
        return exc.errno
    return 0
print(refused(lambda: open("/usr/tau-sandbox-probe", "w")),
      refused(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)),
      refused(lambda: os.setpriority(os.PRIO_PROCESS, 0, 5)),
      refused(lambda: os.chroot("/")),
      refused(lambda: socket.socket().bind(("127.0.0.1", 0))),
      len([p for p in os.listdir("/proc") if p.isdigit()]),
      os.path.exists("/proc/meminfo"))
"""


@pytest.mark.skipif(_runnable() is not None, reason=str(_runnable()))
def test_the_emulated_sandbox_bites() -> None:
    """So that the daemon test below proves something: each restriction refuses what it should."""
    env = dict(os.environ, **sandbox_env())
    result = subprocess.run(sandboxed([os.path.realpath(sys.executable), "-c", PROBE]), capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    read_only, wx, nice, chroot, bind, processes, meminfo = result.stdout.split()
    assert read_only == "30"  # EROFS: ProtectSystem=strict
    assert wx == "13"  # EACCES: MemoryDenyWriteExecute
    assert nice == "1" and chroot == "1"  # EPERM: ~@resources, ~@privileged
    assert bind == "0"  # networking is allowed
    assert processes == "1" and meminfo == "False"  # ProtectProc=invisible, ProcSubset=pid


@pytest.mark.skipif(_runnable() is not None, reason=str(_runnable()))
def test_every_service_runs_under_the_units_sandbox(tmp_path: Path) -> None:
    node = TauDaemon(tmp_path / "n", listeners=("http", "smtp", "imap")).init()
    node.add_user("alice@example.test")
    line = next(x for x in (ROOT / "systemd" / "tau.service").read_text().splitlines() if x.startswith("ExecStart="))
    exec_start = [part.replace("/opt/tau", sys.prefix).replace("/etc/tau/tau.ini", str(node.config))
                  for part in line.split("=", 1)[1].split()]
    argv = sandboxed(exec_start)
    node.env.update(sandbox_env())
    log = open(node.log, "wb")  # noqa: SIM115 - closed below
    node.proc = subprocess.Popen(argv, cwd=ROOT, env=node.env, stdout=log, stderr=subprocess.STDOUT)
    node._logfh = log
    try:
        started = time.monotonic()
        while True:
            assert node.proc.poll() is None, node.log.read_text()[-3000:]
            assert time.monotonic() - started < 60, node.log.read_text()[-3000:]
            try:
                if node.http("GET", "/api/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        # past the SFU's start-up grace, health says degraded unless a media worker came up
        time.sleep(max(0.0, SFU_START_GRACE + 1 - (time.monotonic() - started)))
        status, _, body = node.http("GET", "/api/health")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok", (health, node.log.read_text()[-3000:])
        assert node.token("alice@example.test")  # argon2 hashing and the database
        with smtplib.SMTP("127.0.0.1", node.ports["smtp"], timeout=10) as smtp:
            assert smtp.ehlo()[0] == 250
            smtp.sendmail("someone@example.org", ["alice@example.test"], b"Subject: hi\r\n\r\nsandboxed\r\n")
        text = node.log.read_text()
        assert "Traceback" not in text and "Operation not permitted" not in text, text[-3000:]
    finally:
        stop_all([node])


@pytest.mark.skipif(_runnable() is not None, reason=str(_runnable()))
def test_the_backup_unit_writes_an_archive_under_the_same_sandbox(tmp_path: Path) -> None:
    node = TauDaemon(tmp_path / "n", listeners=("http",)).init()
    node.add_user("alice@example.test")
    out = tmp_path / "backups" / "tau-test.tar.gz"
    out.parent.mkdir()
    tau = os.path.join(sys.prefix, "bin", "tau")
    env = dict(node.env, **sandbox_env(), TAU_CONFIG=str(node.config))
    result = subprocess.run(sandboxed([tau, "backup", "--quiet", str(out)]), capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    verified = subprocess.run([tau, "backup", "--verify", str(out)], capture_output=True, text=True, env=env,
                              timeout=120)
    assert verified.returncode == 0, verified.stderr
