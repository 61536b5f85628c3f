"""Secrets on disk: what ``tau`` writes (archives, exports, restored files) is private whatever
the umask, and ``tau check`` names the paths whose modes give too much away."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tau(*argv: str, umask: int, stdin: str = "") -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "tau"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tau.cli.main"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TAU_")}
    environ["PYTHONPATH"] = str(REPO) + os.pathsep + environ.get("PYTHONPATH", "")
    return subprocess.run([*command, *argv], check=False, input=stdin, capture_output=True, text=True, env=environ,
                          cwd=REPO, timeout=120, preexec_fn=lambda: os.umask(umask))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def installed(tmp_path: Path, umask: int) -> Path:
    data = tmp_path / "data"
    result = tau("init", str(data), "--domain", "example.test", "--hostname", "mail.example.test", umask=umask)
    assert result.returncode == 0, result.stderr
    ini = data / "tau.ini"
    added = tau("user", "add", "alice@example.test", "--password-stdin", "--config", str(ini), umask=umask,
                stdin="alice-password-123\n")
    assert added.returncode == 0, added.stderr
    return ini


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_backup_and_export_archives_are_0600(tmp_path: Path, umask: int) -> None:
    ini = installed(tmp_path, umask)
    backup = tau("backup", str(tmp_path / "b.tar.gz"), "--quiet", "--config", str(ini), umask=umask)
    assert backup.returncode == 0, backup.stderr
    export = tau("user", "export", "alice@example.test", str(tmp_path / "alice.tar.gz"), "--config", str(ini),
                 umask=umask)
    assert export.returncode == 0, export.stderr
    assert mode(tmp_path / "b.tar.gz") == 0o600
    assert mode(tmp_path / "alice.tar.gz") == 0o600


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_restore_writes_database_keys_and_blobs_private(tmp_path: Path, umask: int) -> None:
    ini = installed(tmp_path, umask)
    archive = tmp_path / "b.tar.gz"
    assert tau("backup", str(archive), "--quiet", "--config", str(ini), umask=umask).returncode == 0
    target = tmp_path / "restored"
    restored = tau("restore", str(archive), "--quiet", "--config", str(target / "tau.ini"), umask=umask)
    assert restored.returncode == 0, restored.stderr
    assert mode(target) & 0o077 == 0
    assert mode(target / "tau.db") == 0o600
    assert mode(target / "tls") == 0o700
    assert mode(target / "tls" / "key.pem") == 0o600
    assert mode(target / "secret") == 0o600
    assert mode(target / "tau.ini") & 0o027 == 0
    assert mode(target / "blobs") & 0o077 == 0


def test_check_warns_about_loose_data_dir_and_backups(tmp_path: Path) -> None:
    ini = installed(tmp_path, 0o022)
    data = ini.parent
    backups = tmp_path / "backups"
    backups.mkdir(mode=0o755)
    backups.chmod(0o755)
    (backups / "old.tar.gz").write_bytes(b"x")
    (backups / "old.tar.gz").chmod(0o644)
    data.chmod(0o755)
    result = tau("check", "--config", str(ini), "--backups", str(backups), umask=0o022)
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warn") and "modes" in line]
    assert any(f"{data} is mode 0755" in line and "chmod 750" in line for line in warnings), result.stdout
    assert any(f"{backups} is mode 0755" in line for line in warnings), result.stdout
    assert any("old.tar.gz is mode 0644" in line and "chmod 600" in line for line in warnings), result.stdout


def test_check_reports_private_modes_ok(tmp_path: Path) -> None:
    ini = installed(tmp_path, 0o000)
    result = tau("check", "--config", str(ini), "--backups", str(tmp_path / "none"), umask=0o000)
    assert any(line.startswith("ok") and "modes" in line for line in result.stdout.splitlines()), result.stdout
